import { randomUUID } from 'node:crypto';
import {
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionStatusName,
} from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/common';
import type { BackupProgress, BackupResult } from '../domain/backup-types';
import { backupWorkflowId, parseUserId } from '../domain/user-id';
import { IDEMPOTENCY_WINDOW_MS, parseIdempotencyKey } from '../domain/idempotency-key';
import { backupDataConverter } from '../codec/data-converter';
import { connectionOptions } from '../config/temporal-config';
import {
  abandonUpdate,
  BackupStatusKey,
  BackupStepKey,
  initialBackupSearchAttributes,
  progressQuery,
  retryUpdate,
} from '../contracts/backup-wallet-api';
import type { backupWallet } from '../workflows/backup-wallet';
import { loadClientConfig, type ClientConfig } from './config';
import { ClientError } from './client-error';
import { pendingActivityView, type PendingActivityView, type UserRunStatusView } from './run-views';
import { requireSigner, signForCurrentRun, type OperatorSigner } from './operator-signer';
import { INTERACTIVE_PRIORITY } from '../contracts/run-priority';

export interface StartedBackup {
  userId: string;
  workflowId: string;
  runId: string;
  /** True when a backup for this user was already running and was returned instead of a new one. */
  alreadyRunning: boolean;
  /**
   * True when the run returned is the one an earlier start with the same idempotency key started
   * (within IDEMPOTENCY_WINDOW_MS), running or closed; no new backup was started.
   */
  idempotentReplay: boolean;
  /** With `eagerStart`: the server handed the run's first workflow task straight to this process's worker. */
  eagerlyStarted?: boolean;
}

/** The backup's status: its search attributes (the step from its `progress` query while it runs), progress, result or failure. */
export interface BackupStatusView extends UserRunStatusView<BackupProgress, BackupResult> {
  /** The step's activity in flight, if any: its attempt, how long it has run, the last attempt's error. */
  pendingActivity?: PendingActivityView;
}

/** One line of `backup list`: a backup run as visibility and its progress query see it. */
export interface BackupListEntry {
  userId: string;
  status?: string;
  step?: string;
  execution: WorkflowExecutionStatusName;
  startedAt: string;
  /** For a parked backup: why (from its progress query). */
  lastError?: string;
}

const BACKUP_STATUSES = ['RUNNING', 'NEEDS_ATTENTION', 'COMPLETED', 'FAILED', 'ABANDONED', 'CANCELLED'] as const;

/** A backup that ended without completing: the message says why (abandoned, unknown user, …). */
export class BackupFailedError extends ClientError {
  override readonly name = 'BackupFailedError';
  readonly kind = 'failed';
  constructor(
    readonly userId: string,
    readonly reasonType: string | undefined,
    message: string,
  ) {
    super(message);
  }

  /** The API answers with the reason's type (e.g. BackupAbandonedError), the most useful code to branch on. */
  override get code(): string {
    return this.reasonType ?? this.name;
  }
}

/** `wait` on a parked backup: it waits for an operator; the message says why it parked and what to do. */
export class BackupParkedError extends ClientError {
  override readonly name = 'BackupParkedError';
  readonly kind = 'parked';
}

export class BackupNotFoundError extends ClientError {
  override readonly name = 'BackupNotFoundError';
  readonly kind = 'notFound';
}

/** An operator action the backup refused, e.g. `retry` on a backup that is not parked. */
export class BackupActionRejectedError extends ClientError {
  override readonly name = 'BackupActionRejectedError';
  readonly kind = 'refused';
}

const MEMO_START_REQUEST = 'startRequestId';
/** The start request's idempotency key, kept in the run's memo (encrypted by the payload codec like every memo). */
const MEMO_IDEMPOTENCY_KEY = 'idempotencyKey';

export interface StartBackupOptions {
  /**
   * Names this request: a start with the same key within IDEMPOTENCY_WINDOW_MS (24 h, from the
   * start of the run it started) returns that run, running or closed, instead of a new backup. For
   * a backend that retries its own call and wants at most one backup per request. Validated
   * (InvalidIdempotencyKeyError); see domain/idempotency-key.ts.
   */
  idempotencyKey?: string;
}

/** The operations a backend or operator performs on backups, over one Temporal client. */
export interface BackupClientOptions {
  /**
   * Eager workflow start: the server hands the run's first workflow task straight back to a worker
   * of `taskQueue` in this process, skipping one dispatch. Only for a client whose connection is
   * the NativeConnection of such a worker (a backend that runs a worker; the SDK refuses otherwise).
   */
  eagerStart?: boolean;
}

export class BackupClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
    private readonly options: BackupClientOptions = {},
  ) {}

  /**
   * Starts the backup of one user's wallet, or returns the one already running for that user.
   * After the user's previous run closed, a start begins a new backup, unless `idempotencyKey`
   * names the request that started a run within the window: then that run is returned.
   * Invalid user ids and keys are rejected here, before anything reaches Temporal.
   */
  async startBackupWorkflow(rawUserId: string, options: StartBackupOptions = {}): Promise<StartedBackup> {
    const userId = parseUserId(rawUserId);
    const idempotencyKey = options.idempotencyKey === undefined ? undefined : parseIdempotencyKey(options.idempotencyKey);
    const workflowId = backupWorkflowId(userId);
    if (idempotencyKey !== undefined) {
      const earlier = await this.runStartedWithKey(workflowId, idempotencyKey);
      if (earlier) return { userId, workflowId, runId: earlier.runId, alreadyRunning: earlier.running, idempotentReplay: true };
    }
    const requestId = randomUUID();
    const handle = await this.temporal.workflow.start<typeof backupWallet>('backupWallet', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ userId }],
      // One running backup per user: a second start returns the running one; a finished user
      // can be backed up again.
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      memo: { [MEMO_START_REQUEST]: requestId, ...(idempotencyKey !== undefined ? { [MEMO_IDEMPOTENCY_KEY]: idempotencyKey } : {}) },
      typedSearchAttributes: initialBackupSearchAttributes(),
      // Someone waits for it: ahead of batch children at the task queue and at Portal's limiter.
      priority: INTERACTIVE_PRIORITY,
      ...(this.options.eagerStart ? { requestEagerStart: true } : {}),
    });
    // A run started eagerly is new; otherwise the SDK does not say whether USE_EXISTING started a
    // run, and the memo of the run it returned does.
    if (handle.eagerlyStarted) {
      return { userId, workflowId, runId: handle.firstExecutionRunId, alreadyRunning: false, idempotentReplay: false, eagerlyStarted: true };
    }
    const description = await this.temporal.workflow.getHandle(workflowId, handle.firstExecutionRunId).describe();
    const alreadyRunning = description.memo?.[MEMO_START_REQUEST] !== requestId;
    return {
      userId,
      workflowId,
      runId: handle.firstExecutionRunId,
      alreadyRunning,
      // The running backup another start with the same key began (it raced this one past the look-up).
      idempotentReplay: alreadyRunning && idempotencyKey !== undefined && description.memo?.[MEMO_IDEMPOTENCY_KEY] === idempotencyKey,
    };
  }

  /**
   * The run of `workflowId` that a start with this key began within the window, if any. The
   * latest run is read from the run itself (describe: no visibility lag); earlier ones from
   * visibility (their start was recorded long before this look-up). Temporal's id reuse and
   * conflict policies cannot tell a retried request from a new one once a run closed, hence the
   * key in the memo; the workflow id stays `backup-<userId>`.
   */
  private async runStartedWithKey(workflowId: string, key: string): Promise<{ runId: string; running: boolean } | undefined> {
    const since = new Date(Date.now() - IDEMPOTENCY_WINDOW_MS);
    let latest;
    try {
      latest = await this.temporal.workflow.getHandle(workflowId).describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
    const matches = (run: { memo?: Record<string, unknown> | undefined; startTime: Date }) => run.memo?.[MEMO_IDEMPOTENCY_KEY] === key && run.startTime >= since;
    if (matches(latest)) return { runId: latest.runId, running: latest.status.name === 'RUNNING' };
    const query = `WorkflowId = '${workflowId}' AND StartTime >= '${since.toISOString()}'`;
    for await (const run of this.temporal.workflow.list({ query })) {
      if (run.runId !== latest.runId && matches(run)) return { runId: run.runId, running: run.status.name === 'RUNNING' };
    }
    return undefined;
  }

  async getBackupStatus(rawUserId: string): Promise<BackupStatusView> {
    const userId = parseUserId(rawUserId);
    const handle = this.temporal.workflow.getHandle<typeof backupWallet>(backupWorkflowId(userId));
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new BackupNotFoundError(`no backup was ever started for user ${userId}`);
      throw error;
    }
    const attributes = description.typedSearchAttributes;
    const view: BackupStatusView = {
      userId,
      workflowId: description.workflowId,
      runId: description.runId,
      execution: description.status.name,
    };
    const status = attributes.get(BackupStatusKey);
    const step = attributes.get(BackupStepKey);
    if (status !== undefined) view.status = status;
    if (step !== undefined) view.step = step;
    const pending = description.raw.pendingActivities?.[0];
    if (pending) view.pendingActivity = await pendingActivityView(this.temporal.options.loadedDataConverter, pending);
    if (description.status.name === 'RUNNING') {
      try {
        view.progress = await handle.query(progressQuery);
        // The run upserts BackupStep only with a status change; the query knows the step it is at.
        view.step = view.progress.step;
      } catch {
        // No worker to answer right now; the search attributes above still tell the state.
      }
    } else if (description.status.name === 'COMPLETED') {
      view.result = await handle.result();
    } else {
      try {
        await handle.result();
      } catch (error) {
        view.failure = describeFailure(error);
      }
    }
    return view;
  }

  /** Waits for the user's current backup to finish; throws BackupFailedError if it did not complete. */
  async waitForBackup(rawUserId: string, runId?: string): Promise<BackupResult> {
    const userId = parseUserId(rawUserId);
    return resultOrFailure(userId, 'backup', this.temporal.workflow.getHandle<typeof backupWallet>(backupWorkflowId(userId), runId).result());
  }

  /**
   * Waits for the user's current backup to end, like waitForBackup, but a backup that is (or comes
   * to be) parked ends the wait at once with BackupParkedError: a parked run waits for an operator,
   * not for time. Its progress query is looked at every `pollMs` while the result is awaited.
   * `runId`: that run (the one a start returned) rather than the user's latest.
   */
  async waitUnlessParked(rawUserId: string, options: { runId?: string; pollMs?: number } = {}): Promise<BackupResult> {
    const userId = parseUserId(rawUserId);
    const pollMs = options.pollMs ?? 2_000;
    const handle = this.temporal.workflow.getHandle<typeof backupWallet>(backupWorkflowId(userId), options.runId);
    const result = resultOrFailure(userId, 'backup', handle.result());
    result.catch(() => undefined); // raced below; its rejection is handled there
    for (;;) {
      const progress = await handle.query(progressQuery).catch(() => undefined);
      if (progress?.status === 'NEEDS_ATTENTION') throw new BackupParkedError(parkedMessage(userId, progress));
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), pollMs)));
      const outcome = await Promise.race([result, tick]).finally(() => clearTimeout(timer));
      if (outcome !== 'tick') return outcome;
    }
  }

  /**
   * Backups by status, newest first, from visibility (`BackupStatus`); parked ones with the last
   * error their progress query reports. E.g. every backup waiting for an operator.
   */
  async listBackups(options: { status: string; limit?: number }): Promise<BackupListEntry[]> {
    const status = options.status.toUpperCase();
    if (!(BACKUP_STATUSES as readonly string[]).includes(status)) {
      throw new BackupActionRejectedError(`unknown status ${options.status}: use one of ${BACKUP_STATUSES.join(', ')}`);
    }
    const limit = options.limit ?? 100;
    const entries: BackupListEntry[] = [];
    const query = `WorkflowType = 'backupWallet' AND BackupStatus = '${status}'`;
    for await (const execution of this.temporal.workflow.list({ query, pageSize: Math.min(limit, 1_000) })) {
      const attributes = execution.typedSearchAttributes;
      const entry: BackupListEntry = {
        userId: execution.workflowId.replace(/^backup-/, ''),
        execution: execution.status.name,
        startedAt: execution.startTime.toISOString(),
      };
      const current = attributes.get(BackupStatusKey);
      const step = attributes.get(BackupStepKey);
      if (current !== undefined) entry.status = current;
      if (step !== undefined) entry.step = step;
      if (status === 'NEEDS_ATTENTION' && execution.status.name === 'RUNNING') {
        const progress = await this.temporal.workflow.getHandle<typeof backupWallet>(execution.workflowId, execution.runId).query(progressQuery).catch(() => undefined);
        const error = progress?.lastError;
        if (error) entry.lastError = `${error.type} at ${error.step}: ${error.message}`;
      }
      entries.push(entry);
      if (entries.length >= limit) break;
    }
    return entries;
  }

  /**
   * Resumes a backup parked as NEEDS_ATTENTION from the step that failed, signed by `signer` (any
   * verified operator may). `requestedBy` is the signer's name too, which only a run on a build
   * from before signed actions records.
   */
  async retryBackup(rawUserId: string, signer: OperatorSigner | undefined): Promise<BackupProgress> {
    const { userId, handle, action, operator } = await this.signedFor(rawUserId, signer, 'backup-retry');
    return rejectedAsTyped(handle, userId, 'retry', handle.executeUpdate(retryUpdate, { args: [{ requestedBy: operator, action }] }));
  }

  /** Ends a parked backup without completing it; the reason (signed with the act) is kept in the run's failure with who abandoned it. */
  async abandonBackup(rawUserId: string, rawReason: string, signer: OperatorSigner | undefined): Promise<BackupProgress> {
    const reason = rawReason.trim();
    const { userId, handle, action, operator } = await this.signedFor(rawUserId, signer, 'backup-abandon', reason);
    return rejectedAsTyped(handle, userId, 'abandon', handle.executeUpdate(abandonUpdate, { args: [{ reason, requestedBy: operator, action }] }));
  }

  /** The user's current backup run and the operator's signed action on it. */
  private async signedFor(rawUserId: string, signer: OperatorSigner | undefined, kind: 'backup-retry' | 'backup-abandon', reason?: string) {
    const userId = parseUserId(rawUserId);
    const operator = requireSigner(signer, `${kind.replace('backup-', '')} a backup`);
    const workflowId = backupWorkflowId(userId);
    const notFound = (error: unknown) => (error instanceof WorkflowNotFoundError ? new BackupNotFoundError(`no backup was ever started for user ${userId}`) : error);
    const signed = await signForCurrentRun(this.temporal.workflow, operator, { kind, workflowId, userId, ...(reason !== undefined ? { reason } : {}) }, notFound);
    const handle = this.temporal.workflow.getHandle<typeof backupWallet>(workflowId, signed.runId);
    return { userId, handle, action: signed.action, operator: operator.operator };
  }
}

/** What `wait` says of a parked backup: where, why, and the two ways on. */
function parkedMessage(userId: string, progress: BackupProgress): string {
  const error = progress.lastError;
  const why = error ? `at ${error.step}: ${error.type}: ${error.message}` : `at ${progress.step}`;
  return `the backup of user ${userId} is parked ${why}. Fix the cause, then \`backup retry ${userId}\`; or give it up with \`backup abandon ${userId} --reason "…"\``;
}

/** A run's result, or BackupFailedError with the failure's type and message when it did not complete. */
export async function resultOrFailure<T>(userId: string, what: 'backup' | 'recovery' | 'eject', result: Promise<T>): Promise<T> {
  try {
    return await result;
  } catch (error) {
    if (error instanceof WorkflowFailedError) {
      const cause = error.cause;
      throw new BackupFailedError(
        userId,
        cause instanceof ApplicationFailure ? (cause.type ?? undefined) : cause?.name,
        `${what} of user ${userId} did not complete: ${describeFailure(error)}`,
      );
    }
    throw error;
  }
}

/**
 * An update's refusal or a missing run, as the typed errors the CLI and the API report (what: backup
 * or recovery). An update to a run that has ended fails as "not found" at Temporal; the run is
 * looked up to tell "ended" (refused, 409: README) from "never started" (404).
 */
export async function rejectedAsTyped<T>(
  handle: { describe(): Promise<{ status: { name: string } }> },
  userId: string,
  action: string,
  update: Promise<T>,
  what: 'backup' | 'recovery' | 'eject' = 'backup',
): Promise<T> {
  try {
    return await update;
  } catch (error) {
    if (error instanceof WorkflowUpdateFailedError) {
      throw new BackupActionRejectedError(`${action} refused for user ${userId}: ${error.cause?.message ?? error.message}`);
    }
    if (!(error instanceof WorkflowNotFoundError)) throw error;
    const ended = await handle.describe().then((description) => description.status.name, (lookup: unknown) => {
      if (lookup instanceof WorkflowNotFoundError) return undefined;
      throw lookup;
    });
    if (ended === undefined) throw new BackupNotFoundError(`no ${what} was ever started for user ${userId} (or retention has deleted it)`);
    throw new BackupActionRejectedError(`${action} refused for user ${userId}: its ${what} has already ended (${ended}); only a parked run takes ${action} (see status)`);
  }
}

/**
 * A closed run's failure as operators need it: the typed error that ended it and its message. A
 * failure an activity or a child raised is wrapped by Temporal ("Activity task failed"); the
 * innermost application failure is the one that says what happened.
 */
export function describeFailure(error: unknown): string {
  if (!(error instanceof WorkflowFailedError && error.cause)) return error instanceof Error ? error.message : String(error);
  let cause: Error = error.cause;
  while ((cause instanceof ActivityFailure || cause instanceof ChildWorkflowFailure) && cause.cause) cause = cause.cause;
  const type = cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ` : '';
  return `${type}${cause.message}`;
}

/** Builds a Temporal client with the payload codec, from explicit configuration. */
export async function connectBackupClient(config: ClientConfig): Promise<BackupClient & { close(): Promise<void> }> {
  const connection = await Connection.connect(connectionOptions(config.temporal));
  const client = new Client({
    connection,
    namespace: config.temporal.namespace,
    dataConverter: backupDataConverter(config.codecKeys),
  });
  const backups = new BackupClient(client, config.temporal.taskQueue) as BackupClient & { close(): Promise<void> };
  backups.close = () => connection.close();
  return backups;
}

let defaultClient: Promise<BackupClient> | undefined;

/**
 * The entry point for a backend: configuration from the environment (TEMPORAL_*, PAYLOAD_CODEC_*).
 * Pass `{ idempotencyKey }` when the call may be retried: at most one backup per key (24 h).
 */
export function startBackupWorkflow(userId: string, options?: StartBackupOptions): Promise<StartedBackup> {
  defaultClient ??= connectBackupClient(loadClientConfig());
  return defaultClient.then((client) => client.startBackupWorkflow(userId, options));
}
