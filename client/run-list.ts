import type { Client, WorkflowExecutionStatusName } from '@temporalio/client';
import type { QueryDefinition } from '@temporalio/common';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { describeFailure } from './backup-client';
import { ClientError } from './client-error';

/** A `list` given a status or limit that cannot work; the message lists what is allowed. */
export class RunListOptionsError extends ClientError {
  override readonly name = 'RunListOptionsError';
  readonly kind = 'invalid';
}

/** Temporal's execution statuses as `--status` takes them (the names `status` prints), and as visibility spells them. */
const EXECUTION_STATUSES: Record<string, string> = {
  RUNNING: 'Running',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  CANCELLED: 'Canceled',
  TERMINATED: 'Terminated',
  TIMED_OUT: 'TimedOut',
};

/** What a parkable run's BackupStatus search attribute can say beyond Temporal's status (AWAITING_APPROVAL: recoveries waiting for approvers). */
const PARKABLE_STATUSES = ['NEEDS_ATTENTION', 'ABANDONED', 'AWAITING_APPROVAL'];

/** One line of a list: a run as visibility sees it, with its progress or report for fleet runs. */
export interface RunListEntry {
  /** The id operators use with the other commands (batch id, drill id, user id, workflow id). */
  id: string;
  execution: WorkflowExecutionStatusName;
  startedAt: string;
  closedAt?: string;
  /** The run's own status: its report's or progress's for fleet runs, BackupStatus for recoveries. */
  status?: string;
  step?: string;
  total?: number;
  counts?: Record<string, number>;
  /** Why a run that ended without a report ended (the typed error). */
  failure?: string;
}

/** How one kind of run is listed. */
export interface RunKind {
  workflowType: string;
  /** Stripped from workflow ids to give the id operators use. */
  idPrefix: string;
  /** Fleet runs: the query of their progress while they run (their result is the report once done). */
  progress?: QueryDefinition<{ status: string; total?: number; counts: object }>;
  /** Parkable runs (recoveries): their BackupStatus/BackupStep search attributes. */
  parkable?: boolean;
}

export interface ListRunsOptions {
  status?: string;
  limit?: number;
}

const MAX_LIST = 1_000;

/** The visibility query for a kind and a `--status`; refuses a status the kind does not have, naming those it has. */
function listQuery(kind: RunKind, taskQueue: string, status: string | undefined): string {
  const base = `WorkflowType = '${kind.workflowType}' AND TaskQueue = '${taskQueue.replace(/'/g, '')}' AND ExecutionStatus != 'ContinuedAsNew'`;
  if (status === undefined) return base;
  const wanted = status.toUpperCase();
  if (EXECUTION_STATUSES[wanted]) return `${base} AND ExecutionStatus = '${EXECUTION_STATUSES[wanted]}'`;
  if (kind.parkable && PARKABLE_STATUSES.includes(wanted)) return `${base} AND ${BackupStatusKey.name} = '${wanted}'`;
  const allowed = [...Object.keys(EXECUTION_STATUSES), ...(kind.parkable ? PARKABLE_STATUSES : [])];
  throw new RunListOptionsError(`unknown status ${status}: use one of ${allowed.join(', ')}`);
}

/**
 * Runs of one kind on the task queue, newest first, at most `limit` (default 20): each with its
 * times and, for fleet runs, its status and counts (progress while running, the report once
 * done, the typed error for one that ended without a report).
 */
export async function listRuns(temporal: Client, taskQueue: string, kind: RunKind, options: ListRunsOptions = {}): Promise<RunListEntry[]> {
  const limit = options.limit ?? 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) throw new RunListOptionsError(`--limit must be a whole number from 1 to ${MAX_LIST}`);
  const entries: RunListEntry[] = [];
  for await (const execution of temporal.workflow.list({ query: listQuery(kind, taskQueue, options.status), pageSize: Math.min(limit, MAX_LIST) })) {
    const entry: RunListEntry = {
      id: execution.workflowId.startsWith(kind.idPrefix) ? execution.workflowId.slice(kind.idPrefix.length) : execution.workflowId,
      execution: execution.status.name,
      startedAt: execution.startTime.toISOString(),
      ...(execution.closeTime ? { closedAt: execution.closeTime.toISOString() } : {}),
    };
    if (kind.parkable) {
      const status = execution.typedSearchAttributes.get(BackupStatusKey);
      const step = execution.typedSearchAttributes.get(BackupStepKey);
      if (status !== undefined) entry.status = status;
      if (step !== undefined) entry.step = step;
    }
    if (kind.progress) Object.assign(entry, await fleetSummary(temporal, kind.progress, execution.workflowId, execution.runId, execution.status.name));
    entries.push(entry);
    if (entries.length >= limit) break;
  }
  return entries;
}

/** A fleet run's status and counts: its progress while it runs, its report once done, or the error that ended it. */
async function fleetSummary(
  temporal: Client,
  progress: NonNullable<RunKind['progress']>,
  workflowId: string,
  runId: string,
  execution: WorkflowExecutionStatusName,
): Promise<Partial<RunListEntry>> {
  const handle = temporal.workflow.getHandle(workflowId, runId);
  const summary = (view: { status: string; total?: number; counts: object }) => ({
    status: view.status,
    ...(view.total !== undefined ? { total: view.total } : {}),
    counts: view.counts as Record<string, number>,
  });
  if (execution === 'RUNNING') return handle.query(progress).then(summary, () => ({}));
  return handle.result().then(
    (report: { status: string; total?: number; counts: object }) => summary(report),
    (error: unknown) => ({ failure: describeFailure(error) }),
  );
}
