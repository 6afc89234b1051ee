import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
  type WorkflowExecutionStatusName,
} from '@temporalio/client';
import { describeFailure } from './backup-client';
import { pendingActivityView, type PendingActivityView } from './run-views';
import { parseUserId } from '../domain/user-id';
import type { BatchSource } from '../contracts/batch-backup-api';
import type { rotateKeys } from '../workflows/rotate-keys';
import {
  cancelRotationUpdate,
  KEY_ROTATION_WORKFLOW_ID,
  rotationStartKind,
  MAX_LIST_USER_IDS,
  pauseRotationUpdate,
  resumeRotationUpdate,
  rotationFailuresQuery,
  rotationProgressQuery,
  type RotationFailure,
  type RotationProgress,
  type RotationReport,
} from '../contracts/rotate-keys-api';
import { PORTAL_LIMITS, RATE_HEADROOM } from './batch-client';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import { ClientError } from './client-error';
import { requireSigner, type OperatorSigner } from './operator-signer';
import { sendFleetControl } from './fleet-controls';

/**
 * Portal client-route calls a rotation makes per user with one backup (two pairs) in the Portal
 * store: the client object, then per pair the read, the replace's own read and write, and the
 * read-back. Users already on the new version cost 3; the PostgreSQL and http stores cost 1.
 */
export const PORTAL_CALLS_PER_ROTATED_USER = 9;

/** Users per minute that keep a rotation over the Portal store within Portal's client-route limit, with headroom. */
export function defaultUsersPerMinute(limits = PORTAL_LIMITS): number {
  return Math.max(1, Math.floor((limits.clientPerMinute / PORTAL_CALLS_PER_ROTATED_USER) * RATE_HEADROOM));
}

/** Rotation options that cannot work; the message says which and what is allowed. */
export class KeyRotationOptionsError extends ClientError {
  override readonly name = 'KeyRotationOptionsError';
  readonly kind = 'invalid';
}

/** No rotation was ever started in this namespace (or its history is gone). */
export class KeyRotationNotFoundError extends ClientError {
  override readonly name = 'KeyRotationNotFoundError';
  readonly kind = 'notFound';
}

export interface StartRotationOptions {
  /** The users whose ciphertexts are rewrapped: every user with a backup (a list of up to 1,000, or the backend's paged route). */
  source: BatchSource;
  rotationId?: string;
  /** Users visited per minute at most (default: Portal's client-route limit with headroom, see defaultUsersPerMinute). */
  usersPerMinute?: number;
  /** Rewrap activities in flight (default 2). */
  concurrency?: number;
  /** Users per rewrap activity (default 10, at most the per-minute rate). */
  usersPerActivity?: number;
  pageSize?: number;
  /** Raise min_decryption_version to the new version once every ciphertext is verified on it (default false). */
  raiseMinDecryptionVersion?: boolean;
  /**
   * The source lists every user with a stored ciphertext. Needed to raise min_decryption_version
   * over a store that cannot be listed (Portal, HTTP): the raise is refused without it, since an
   * unlisted user's ciphertext would stop decrypting. The PostgreSQL store is counted instead.
   */
  everyUser?: boolean;
  /** False: no new key version; rewrap to the latest one (default true). */
  rotate?: boolean;
  /** First wait before looking again at users whose pre-rotation backup was running (default 30 s). */
  deferredRecheckMs?: number;
  /** The longest wait between those looks (default 5 min). */
  deferredRecheckMaxMs?: number;
  /** The task queue the backups run on, when the rotation runs on a queue of its own (default: the client's). */
  backupTaskQueue?: string;
  activitiesPerRun?: number;
  maxHistoryEventsPerRun?: number;
}

export interface StartedRotation {
  rotationId: string;
  workflowId: string;
  runId: string;
  /** True when a rotation was already running: that one is returned, nothing new was started. */
  alreadyRunning: boolean;
}

export interface KeyRotationStatusView {
  workflowId: string;
  runId: string;
  execution: WorkflowExecutionStatusName;
  /** While running: the rotation's own progress (when a worker could answer). */
  progress?: RotationProgress;
  /** While running: its two rates in words, e.g. "16 users/min asked (--rate); 12 users done in the last minute". */
  pace?: string;
  /** Once completed: its report. */
  report?: RotationReport;
  /** The rewrap or key activities being retried right now, with their attempt and last failure. */
  retrying?: PendingActivityView[];
  failure?: string;
}

/** The pace asked for (usersPerMinute) beside the one measured (ratePerMinute), each saying what it counts. */
function paceOf(progress: Pick<RotationProgress, 'usersPerMinute' | 'ratePerMinute'>): string {
  return `${progress.usersPerMinute} users/min asked (--rate); ${progress.ratePerMinute} users done in the last minute`;
}

/** Starts and steers key rotations (one at a time per namespace: workflow id `rotate-keys`). */
export class KeysClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
  ) {}

  /** Key rotations on this task queue, newest first: outcome, times, counts (`--status` filters). */
  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'rotateKeys', idPrefix: '', progress: rotationProgressQuery }, options);
  }

  /** Starts a rotation, signed by `signer`, who must be an approver (RECOVERY_APPROVERS); the raise is part of what is signed. */
  async rotate(options: StartRotationOptions, signer: OperatorSigner | undefined): Promise<StartedRotation> {
    const approver = requireSigner(signer, 'start a key rotation');
    let source = options.source;
    if (source.kind === 'list') {
      if (source.userIds.length === 0) throw new KeyRotationOptionsError('a rotation needs at least one user id');
      source.userIds.forEach((id) => parseUserId(id));
      source = { kind: 'list', userIds: [...new Set(source.userIds)] };
      if (source.userIds.length > MAX_LIST_USER_IDS) {
        throw new KeyRotationOptionsError(
          `a list source holds at most ${MAX_LIST_USER_IDS} user ids (this one has ${source.userIds.length}): serve them from the backend's paged route (--source)`,
        );
      }
    } else if (source.kind !== 'http' || !URL.canParse(source.url)) {
      throw new KeyRotationOptionsError('the source must be a list of user ids or the URL of the backend’s paged user route');
    }
    const usersPerMinute = options.usersPerMinute ?? defaultUsersPerMinute();
    const concurrency = options.concurrency ?? 2;
    const usersPerActivity = options.usersPerActivity ?? Math.max(1, Math.min(10, Math.floor(usersPerMinute)));
    if (!(usersPerMinute > 0)) throw new KeyRotationOptionsError('the rate must be a positive number of users per minute');
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100) throw new KeyRotationOptionsError('concurrency must be a whole number from 1 to 100');
    if (!Number.isInteger(usersPerActivity) || usersPerActivity < 1 || usersPerActivity > 100) {
      throw new KeyRotationOptionsError('users per activity must be a whole number from 1 to 100');
    }
    const rotationId = options.rotationId ?? randomUUID();
    const raiseMinDecryptionVersion = options.raiseMinDecryptionVersion ?? false;
    const request = await approver.sign({ kind: rotationStartKind(raiseMinDecryptionVersion), workflowId: KEY_ROTATION_WORKFLOW_ID });
    try {
      const handle = await this.temporal.workflow.start<typeof rotateKeys>('rotateKeys', {
        taskQueue: this.taskQueue,
        workflowId: KEY_ROTATION_WORKFLOW_ID,
        args: [
          {
            rotationId,
            request,
            source,
            usersPerMinute,
            concurrency,
            usersPerActivity,
            raiseMinDecryptionVersion,
            ...(options.everyUser ? { everyUser: true } : {}),
            ...(options.rotate === false ? { rotate: false } : {}),
            ...(options.pageSize ? { pageSize: options.pageSize } : {}),
            ...(options.deferredRecheckMs ? { deferredRecheckMs: options.deferredRecheckMs } : {}),
            ...(options.deferredRecheckMaxMs ? { deferredRecheckMaxMs: options.deferredRecheckMaxMs } : {}),
            ...(options.backupTaskQueue ? { backupTaskQueue: options.backupTaskQueue } : {}),
            ...(options.activitiesPerRun ? { activitiesPerRun: options.activitiesPerRun } : {}),
            ...(options.maxHistoryEventsPerRun ? { maxHistoryEventsPerRun: options.maxHistoryEventsPerRun } : {}),
          },
        ],
        // One rotation at a time: a second start finds the running one; a finished one can be followed by another.
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      });
      return { rotationId, workflowId: KEY_ROTATION_WORKFLOW_ID, runId: handle.firstExecutionRunId, alreadyRunning: false };
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      const handle = this.handle();
      const description = await handle.describe();
      const progress = await handle.query(rotationProgressQuery).catch(() => undefined);
      return { rotationId: progress?.rotationId ?? 'unknown (no worker answered)', workflowId: KEY_ROTATION_WORKFLOW_ID, runId: description.runId, alreadyRunning: true };
    }
  }

  private handle() {
    return this.temporal.workflow.getHandle<typeof rotateKeys>(KEY_ROTATION_WORKFLOW_ID);
  }

  /** The latest rotation: progress and retrying activities while it runs, its report once done. */
  async status(): Promise<KeyRotationStatusView> {
    const handle = this.handle();
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new KeyRotationNotFoundError('no key rotation was ever started in this namespace');
      throw error;
    }
    const view: KeyRotationStatusView = { workflowId: description.workflowId, runId: description.runId, execution: description.status.name };
    if (description.status.name === 'RUNNING') {
      view.progress = await handle.query(rotationProgressQuery).catch(() => undefined);
      if (view.progress) view.pace = paceOf(view.progress);
      const retrying = [];
      for (const pending of description.raw.pendingActivities ?? []) {
        if ((pending.attempt ?? 1) <= 1 && !pending.lastFailure) continue;
        retrying.push(await pendingActivityView(this.temporal.options.loadedDataConverter, pending));
      }
      if (retrying.length > 0) view.retrying = retrying;
    } else if (description.status.name === 'COMPLETED') {
      view.report = await handle.result();
    } else {
      try {
        await handle.result();
      } catch (error) {
        view.failure = describeFailure(error);
      }
    }
    return view;
  }

  /** Waits for the latest rotation to finish and returns its report (throws WorkflowFailedError if it failed). */
  wait(): Promise<RotationReport> {
    return this.handle().result();
  }

  /** The most recent failures (bounded); every failure is also in the workers' logs. */
  failures(): Promise<RotationFailure[]> {
    return this.handle().query(rotationFailuresQuery);
  }

  /** Pause, resume and cancel are signed by `signer` (any verified operator). */
  pause(signer: OperatorSigner | undefined): Promise<RotationProgress> {
    return sendFleetControl(this.temporal, signer, { workflowId: KEY_ROTATION_WORKFLOW_ID, control: 'pause', update: pauseRotationUpdate });
  }

  resume(signer: OperatorSigner | undefined): Promise<RotationProgress> {
    return sendFleetControl(this.temporal, signer, { workflowId: KEY_ROTATION_WORKFLOW_ID, control: 'resume', update: resumeRotationUpdate });
  }

  /** Stops visiting users; activities in flight finish; min_decryption_version is not raised. The reason, if any, is signed and recorded. */
  cancel(signer: OperatorSigner | undefined, reason?: string): Promise<RotationProgress> {
    return sendFleetControl(this.temporal, signer, { workflowId: KEY_ROTATION_WORKFLOW_ID, control: 'cancel', update: cancelRotationUpdate, ...(reason !== undefined ? { reason } : {}) });
  }
}
