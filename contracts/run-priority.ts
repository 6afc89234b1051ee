import type { Priority } from '@temporalio/common';

/**
 * The two classes of work that share the task queue, the workers' slots and Portal's limit
 * (docs/performance.md, "Fairness under a batch"):
 *
 * - **interactive**: a backup or recovery someone is waiting for — `startBackupWorkflow` (client,
 *   CLI, HTTP API), a recovery and the fresh backup it starts;
 * - **batch**: the children of a batch re-backup (`batchBackup`), and everything that carries no
 *   interactive priority (drills, key rotations, runs started before priorities existed).
 *
 * At Temporal, the class is the run's task-queue priority key (1 = first … 5 = last; the server's
 * default is 3, and activities inherit their workflow's key): with the new matcher
 * (`matching.useNewMatcher`, ops/temporal/dynamic-config.yaml) a backlogged interactive task is
 * dispatched before any batch task. At Portal's limiter (adapters/portal/portal-rate-limiter.ts)
 * the worker reads the running activity's priority key (`portalDemandOfPriority`): interactive
 * requests go first and the batch may not take the slots kept for them.
 *
 * Written here once; workflows, clients and the worker import it. Keys 1 and 2 are interactive
 * (1 is left free for anything more urgent), 3 (the default) and above are batch.
 */
export const INTERACTIVE_PRIORITY_KEY = 2;
export const BATCH_PRIORITY_KEY = 4;

/** What interactive runs start with. */
export const INTERACTIVE_PRIORITY: Priority = { priorityKey: INTERACTIVE_PRIORITY_KEY };
/** What a batch run and its children start with. */
export const BATCH_PRIORITY: Priority = { priorityKey: BATCH_PRIORITY_KEY };

/** Which of Portal's limiter classes a request belongs to. */
export type PortalDemand = 'interactive' | 'batch';

/**
 * The limiter class of an activity from its priority (`activityInfo().priority`, which comes
 * through Temporal and is not trusted): interactive only for a whole-number key from 1 to
 * INTERACTIVE_PRIORITY_KEY; anything else — no priority, the default, a batch key, a malformed
 * value — is batch, the class that can never take the slots kept for interactive requests.
 */
export function portalDemandOfPriority(priority: unknown): PortalDemand {
  if (typeof priority !== 'object' || priority === null) return 'batch';
  const key = (priority as { priorityKey?: unknown }).priorityKey;
  return typeof key === 'number' && Number.isInteger(key) && key >= 1 && key <= INTERACTIVE_PRIORITY_KEY ? 'interactive' : 'batch';
}

/**
 * The patch ids of the child starts that now carry a priority (docs/changing-workflows.md): a run
 * recorded before them replays its child start without one.
 */
export const BATCH_CHILD_PRIORITY_PATCH = 'batch-child-priority';
export const RECOVERY_BACKUP_PRIORITY_PATCH = 'recovery-backup-priority';
