import { createHash, randomUUID } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { msToNumber } from '@temporalio/common/lib/time';
import { parseUserId } from '../domain/user-id';
import { BackupStepKey } from '../contracts/backup-wallet-api';
import { MAX_LIST_USER_IDS, type BatchSource } from '../contracts/batch-backup-api';
import type { restoreDrill } from '../workflows/restore-drill';
import {
  DEFAULT_DRILL_SCHEDULE_ID,
  DRILL_FAILED_STATUS,
  DRILL_FAILURE_KINDS,
  drillFindingWorkflowId,
  DRILL_ID_PREFIX,
  drillReportQuery,
  resumeDrillUpdate,
  drillWorkflowId,
  type DrillFailure,
  type DrillFailureKind,
  type DrillReport,
  type RestoreDrillInput,
} from '../contracts/restore-drill-api';
import { BatchClient, type StartBatchOptions } from './batch-client';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import { ClientError } from './client-error';
import type { OperatorSigner } from './operator-signer';
import { sendFleetControl } from './fleet-controls';
import { describeFailure } from './backup-client';

/**
 * Users checked per minute by default. A check costs one credentials read, one Portal client-object
 * read (plus two ciphertext reads on the Portal store) and one or two Vault calls: 30 a minute is 90
 * of Portal's 200 client-route requests a minute at most, leaving room for backups running beside it.
 */
export const DEFAULT_DRILL_USERS_PER_MINUTE = 30;
/** A schedule runs the drill at most this often. */
const MIN_SCHEDULE_INTERVAL_MS = 60_000;
/** A drill's findings reach visibility shortly after the drill records them; how long to wait for them. */
const VISIBILITY_WAIT_MS = 15_000;
const DRILL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;

/** Drill options that cannot work; the message says which and what is allowed. */
export class DrillOptionsError extends ClientError {
  override readonly name = 'DrillOptionsError';
  readonly kind = 'invalid';
}

/** The drill ended without a report (a permanent error on the workers' side, e.g. Vault refused its token). */
export class DrillFailedError extends ClientError {
  override readonly name = 'DrillFailedError';
  readonly kind = 'failed';
}

export interface DrillOptions {
  source: BatchSource;
  usersPerMinute?: number;
  pageSize?: number;
  checksPerRun?: number;
  maxHistoryEventsPerRun?: number;
  inconclusiveAfterAttempts?: number;
}

export interface ScheduleDrillOptions extends DrillOptions {
  /** How often: a duration such as `24h` or `30m`, or milliseconds. */
  every: string | number;
  scheduleId?: string;
  /** Also run one drill now. */
  runNow?: boolean;
}

export interface RebackupResult {
  drillId: string;
  /** The failed users the batches cover. */
  users: number;
  batches: { batchId: string; workflowId: string; users: number; alreadyStarted: boolean }[];
}

/** Runs, schedules and reads restore drills; re-backs-up the users a drill found failing. */
export class DrillClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
  ) {}

  /** Drills on this task queue, newest first: status, times, counts (`--status` filters). */
  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'restoreDrill', idPrefix: DRILL_ID_PREFIX, progress: drillReportQuery }, options);
  }

  /** Starts one drill now. Drill ids are never reused, so a drill's findings are its own. */
  async runOnce(options: DrillOptions & { drillId?: string }): Promise<{ drillId: string; runId: string }> {
    const drillId = drillWorkflowId(checkedId(options.drillId ?? randomUUID(), 'drill id'));
    const handle = await this.temporal.workflow.start<typeof restoreDrill>('restoreDrill', {
      taskQueue: this.taskQueue,
      workflowId: drillId,
      args: [drillInput(options)],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    return { drillId, runId: handle.firstExecutionRunId };
  }

  /**
   * Runs the drill on a Temporal Schedule every `every` (one at a time: a run still going when the
   * next is due makes the schedule skip it). Scheduling again with the same id updates it.
   * Each run's drill id is `drill-<scheduleId>-<time of the run>`.
   */
  async schedule(options: ScheduleDrillOptions): Promise<{ scheduleId: string; every: string; created: boolean; nextRuns: string[] }> {
    const scheduleId = checkedId(options.scheduleId ?? DEFAULT_DRILL_SCHEDULE_ID, 'schedule id');
    const everyMs = durationMs(options.every);
    const spec = { intervals: [{ every: everyMs }] };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: 'restoreDrill',
      taskQueue: this.taskQueue,
      workflowId: drillWorkflowId(scheduleId),
      args: [drillInput(options)],
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' };
    let created = true;
    let handle;
    try {
      handle = await this.temporal.schedule.create({ scheduleId, spec, action, policies, state: { triggerImmediately: options.runNow ?? false } });
    } catch (error) {
      if (!(error instanceof ScheduleAlreadyRunning)) throw error;
      created = false;
      handle = this.temporal.schedule.getHandle(scheduleId);
      await handle.update((previous) => ({ ...previous, spec, action, policies: { ...previous.policies, ...policies } }));
      if (options.runNow) await handle.trigger();
    }
    const description = await handle.describe();
    return { scheduleId, every: typeof options.every === 'string' ? options.every : `${everyMs} ms`, created, nextRuns: description.info.nextActionTimes.slice(0, 3).map((at) => at.toISOString()) };
  }

  /** Deletes the schedule (a drill it started keeps running). False when there was none. */
  async unschedule(scheduleId = DEFAULT_DRILL_SCHEDULE_ID): Promise<boolean> {
    try {
      await this.temporal.schedule.getHandle(scheduleId).delete();
      return true;
    } catch (error) {
      if (error instanceof ScheduleNotFoundError) return false;
      throw error;
    }
  }

  /** The latest drill on this task queue, as visibility orders runs: a running one first, else the one that closed last. */
  async latestDrillId(): Promise<string | undefined> {
    const query = `WorkflowType = 'restoreDrill' AND TaskQueue = '${this.taskQueue.replace(/'/g, '')}'`;
    for await (const execution of this.temporal.workflow.list({ query, pageSize: 10 })) {
      return execution.workflowId;
    }
    return undefined;
  }

  /**
   * The drill's report: while it runs, the report so far (query); once done, its result. When the
   * drill kept only the most recent failures, every failure is listed from visibility instead.
   */
  async report(drillId: string, limit = 10_000): Promise<DrillReport> {
    const id = drillWorkflowId(drillId);
    const handle = this.temporal.workflow.getHandle<typeof restoreDrill>(id);
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new DrillOptionsError(`no drill ${id}`);
      throw error;
    }
    let report: DrillReport;
    if (description.status.name === 'RUNNING') {
      report = await handle.query(drillReportQuery);
    } else {
      try {
        report = await handle.result();
      } catch (error) {
        if (error instanceof WorkflowFailedError) throw new DrillFailedError(`drill ${id} ended without a report: ${describeFailure(error)}`);
        throw error;
      }
    }
    if (!report.failuresOmitted) return report;
    const failures = await this.listFailures(id, limit);
    const omitted = report.counts.failed - failures.length;
    const { failuresOmitted: _omitted, ...rest } = report;
    return { ...rest, failures, ...(omitted > 0 ? { failuresOmitted: omitted } : {}) };
  }

  /**
   * Resumes a drill that its user source paused (`status` PAUSED, `sourceRefused` says why): it asks
   * for the refused page again. Fix the source first; a drill that is not paused refuses.
   */
  async resume(drillId: string, signer: OperatorSigner | undefined): Promise<DrillReport> {
    try {
      return await sendFleetControl(this.temporal, signer, { workflowId: drillWorkflowId(drillId), control: 'resume', update: resumeDrillUpdate });
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new DrillOptionsError(`no drill ${drillWorkflowId(drillId)}`);
      if (error instanceof WorkflowUpdateFailedError) throw new DrillOptionsError(error.cause?.message ?? error.message);
      throw error;
    }
  }

  /** Waits for the drill to finish and returns its report. */
  async wait(drillId: string): Promise<DrillReport> {
    await this.temporal.workflow.getHandle<typeof restoreDrill>(drillWorkflowId(drillId)).result().catch((error: unknown) => {
      if (error instanceof WorkflowFailedError) throw new DrillFailedError(`drill ${drillId} ended without a report: ${error.cause?.message ?? error.message}`);
      throw error;
    });
    return this.report(drillId);
  }

  /**
   * Every failure of a drill, from visibility (the `drillFinding` runs with its DrillId), however
   * many. The same list the Web UI shows for `DrillId = "<drill id>"`.
   */
  async listFailures(drillId: string, limit = 10_000): Promise<DrillFailure[]> {
    const id = drillWorkflowId(drillId);
    const query = `WorkflowType = 'drillFinding' AND BackupStatus = '${DRILL_FAILED_STATUS}' AND DrillId = '${id.replace(/'/g, '')}'`;
    const prefix = drillFindingWorkflowId(id, '');
    const failures: DrillFailure[] = [];
    for await (const execution of this.temporal.workflow.list({ query, pageSize: Math.min(limit, 1_000) })) {
      const memo = (execution.memo ?? {}) as { userId?: unknown; reason?: unknown };
      const kind = execution.typedSearchAttributes.get(BackupStepKey);
      failures.push({
        userId: typeof memo.userId === 'string' ? memo.userId : execution.workflowId.slice(prefix.length),
        kind: (DRILL_FAILURE_KINDS as readonly string[]).includes(kind ?? '') ? (kind as DrillFailureKind) : 'CHECK_FAILED',
        reason: typeof memo.reason === 'string' ? memo.reason : '',
        checkedAt: execution.startTime.toISOString(),
      });
      if (failures.length >= limit) break;
    }
    return failures;
  }

  /**
   * Starts batch re-backups over the users the drill found failing (one batch per
   * MAX_LIST_USER_IDS users). A user whose backup completed after the drill found it is skipped.
   * Batch ids derive from the drill and the users, so asking again while those batches run starts
   * nothing new.
   */
  async rebackupFailures(drillId: string, options: Omit<StartBatchOptions, 'source' | 'batchId' | 'skipIfBackedUpSince'> = {}): Promise<RebackupResult> {
    const id = drillWorkflowId(drillId);
    const report = await this.report(id);
    let failures = await this.failedUsers(id, report);
    const deadline = Date.now() + VISIBILITY_WAIT_MS;
    while (failures.size < report.counts.failed && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      failures = await this.failedUsers(id, report);
    }
    const users = [...failures.keys()].sort();
    const batches: RebackupResult['batches'] = [];
    const batchClient = new BatchClient(this.temporal, this.taskQueue);
    for (let start = 0; start < users.length; start += MAX_LIST_USER_IDS) {
      const chunk = users.slice(start, start + MAX_LIST_USER_IDS);
      const digest = createHash('sha256').update(chunk.join('\n')).digest('hex').slice(0, 12);
      const batchId = `rebackup-${id}-${batches.length + 1}-${digest}`;
      // The latest finding of the chunk: a backup completed after it post-dates every finding in it.
      const latestFinding = chunk.map((userId) => failures.get(userId)!).sort().at(-1)!;
      try {
        const started = await batchClient.startBatch({ ...options, source: { kind: 'list', userIds: chunk }, batchId, skipIfBackedUpSince: new Date(latestFinding) });
        batches.push({ batchId, workflowId: started.workflowId, users: chunk.length, alreadyStarted: false });
      } catch (error) {
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
        batches.push({ batchId, workflowId: error.workflowId, users: chunk.length, alreadyStarted: true });
      }
    }
    return { drillId: id, users: users.length, batches };
  }

  /** userId → when the drill found it failing: the report's failures and visibility's, merged. */
  private async failedUsers(drillId: string, report: DrillReport): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const failure of [...report.failures, ...(await this.listFailures(drillId))]) {
      const known = found.get(failure.userId);
      if (!known || known < failure.checkedAt) found.set(failure.userId, failure.checkedAt);
    }
    return found;
  }
}

function drillInput(options: DrillOptions): RestoreDrillInput {
  let source = options.source;
  if (source.kind === 'list') {
    if (source.userIds.length === 0) throw new DrillOptionsError('a drill needs at least one user id');
    source.userIds.forEach((id) => parseUserId(id));
    source = { kind: 'list', userIds: [...new Set(source.userIds)] };
    if (source.userIds.length > MAX_LIST_USER_IDS) {
      throw new DrillOptionsError(
        `a list source holds at most ${MAX_LIST_USER_IDS} user ids (this one has ${source.userIds.length}): serve the ids from ` +
          'the backend’s paged route (--source, GET ?cursor=&limit= → {userIds, nextCursor})',
      );
    }
  } else if (!URL.canParse(source.url)) {
    throw new DrillOptionsError(`the source ${source.url} is not a URL`);
  }
  const usersPerMinute = options.usersPerMinute ?? DEFAULT_DRILL_USERS_PER_MINUTE;
  if (!(usersPerMinute > 0) || !Number.isFinite(usersPerMinute)) throw new DrillOptionsError('the rate must be a positive number of users per minute');
  for (const [name, value] of [
    ['pageSize', options.pageSize],
    ['checksPerRun', options.checksPerRun],
    ['maxHistoryEventsPerRun', options.maxHistoryEventsPerRun],
    ['inconclusiveAfterAttempts', options.inconclusiveAfterAttempts],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new DrillOptionsError(`${name} must be a positive whole number`);
  }
  return {
    source,
    usersPerMinute,
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    ...(options.checksPerRun ? { checksPerRun: options.checksPerRun } : {}),
    ...(options.maxHistoryEventsPerRun ? { maxHistoryEventsPerRun: options.maxHistoryEventsPerRun } : {}),
    ...(options.inconclusiveAfterAttempts ? { inconclusiveAfterAttempts: options.inconclusiveAfterAttempts } : {}),
  };
}

function checkedId(id: string, what: string): string {
  if (!DRILL_ID.test(id)) throw new DrillOptionsError(`a ${what} is 1–100 letters, digits and . _ : - (starting with a letter or digit); got ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}

function durationMs(every: string | number): number {
  let ms: number;
  try {
    ms = msToNumber(every as Parameters<typeof msToNumber>[0]);
  } catch {
    throw new DrillOptionsError(`--every ${String(every)} is not a duration (e.g. 24h, 12h, 30m)`);
  }
  if (!(ms >= MIN_SCHEDULE_INTERVAL_MS)) throw new DrillOptionsError(`--every must be at least 1 minute (got ${String(every)})`);
  return ms;
}
