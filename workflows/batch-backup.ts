import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  condition,
  log,
  makeContinueAsNewFunc,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { TypedSearchAttributes, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { BackupCheck, BatchActivities } from '../activities/batch/batch-activities';
import { backupWorkflowId } from '../domain/user-id';
import { backupWallet } from './backup-wallet';
import { initialBackupSearchAttributes } from '../contracts/backup-wallet-api';
import { countBatchChildren } from './workflow-metrics';
import { fetchPageOrPause } from './source-pages';
import { UPGRADE_ON_CONTINUE_AS_NEW } from './fleet-run';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import {
  BatchIdKey,
  batchProblemsQuery,
  batchProgressQuery,
  cancelBatchUpdate,
  childParkedSignal,
  MAX_LIST_USER_IDS,
  MAX_CARRIED_PARKED,
  MAX_RECENT_PROBLEMS,
  pauseBatchUpdate,
  resumeBatchUpdate,
  type BatchBackupInput,
  type BatchCarriedState,
  type BatchProblem,
  type BatchProgress,
  type BatchReport,
} from '../contracts/batch-backup-api';

const sourceActivities = proxyActivities<BatchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['BatchSourceNotAllowedError'] },
});


/** After this many child starts in one run, drain and continue as new to keep history bounded. */
const DEFAULT_STARTS_PER_RUN = 500;
/** Continue as new at this history length too, whatever the starts (e.g. pages that skip everyone). */
const MAX_HISTORY_EVENTS_PER_RUN = 10_000;
const MIN_PACING_SLEEP_MS = 20;
const MAX_CATCH_UP_MS = 5_000;
/** Backups the batch joined (but did not start) are looked at after 5 s, then less often, up to every 5 min. */
const JOINED_POLL_FIRST_MS = 5_000;
const JOINED_POLL_MAX_MS = 5 * 60_000;

/**
 * Re-backs-up many wallets: pages user ids from the source, skips recent backups if asked, and
 * runs child backupWallet workflows (id `backup-<userId>`, so a running backup is joined, not
 * duplicated) in a sliding window, paced to a global rate. Pause, resume and cancel by update;
 * a Temporal cancel (Web UI, `temporal workflow cancel`) acts like the cancel update: no new
 * starts, every backup in flight finishes, and the report is still the result. History is
 * bounded by continue-as-new, and nothing carried grows with the number of wallets.
 */
export async function batchBackup(input: BatchBackupInput): Promise<BatchReport> {
  if (isUnencryptedPayload(input)) throw ApplicationFailure.nonRetryable(UNENCRYPTED_PAYLOAD_MESSAGE, 'UnencryptedPayloadError');
  if (typeof input?.batchId !== 'string' || !input.source || !(input.concurrency >= 1) || !(input.backupsPerMinute > 0)) {
    throw ApplicationFailure.nonRetryable('batch input is malformed: start batches with the project client or CLI', 'BatchOptionsError');
  }
  if (input.source.kind === 'list' && input.source.userIds.length > MAX_LIST_USER_IDS && !input.carried) {
    throw ApplicationFailure.nonRetryable(
      `a list source holds at most ${MAX_LIST_USER_IDS} user ids (got ${input.source.userIds.length}): use a paged source, or start one batch per chunk`,
      'BatchOptionsError',
    );
  }
  const batch = new BatchRun(input);
  // Backups must never be cut short by their batch (after step 3 that would strand shares), so
  // the batch runs in a scope the cancel cannot reach and treats the request as a cancel update.
  CancellationScope.current().cancelRequested.catch(() => batch.cancel());
  return CancellationScope.nonCancellable(() => batch.run());
}

/** One run (between continue-as-new) of a batch. */
class BatchRun {
  private readonly state: BatchCarriedState;
  private readonly pageSize: number;
  private readonly intervalMs: number;
  private list: string[];
  private cancelled = false;
  private readonly inFlight = new Set<string>();
  /** Backups this batch joined rather than started: they are polled, not awaited. */
  private readonly joined = new Set<string>();
  private readonly parkedInThisRun = new Set<string>();
  /**
   * Parked backups this run has no child result for (joined ones that parked, and those carried
   * from an earlier run): polled like joined ones, so one that completes after an operator's retry
   * is counted completed, not parked.
   */
  private readonly watchedParked = new Set<string>();
  private readonly completionTimes: number[] = [];
  private startsThisRun = 0;
  private nextStartAt = Date.now();
  private joinedPollMs = JOINED_POLL_FIRST_MS;

  constructor(private readonly input: BatchBackupInput) {
    this.pageSize = input.pageSize ?? 200;
    this.intervalMs = 60_000 / input.backupsPerMinute;
    this.state = carriedState(input);
    this.list = input.source.kind === 'list' ? [...input.source.userIds] : [];
    this.cancelled = this.state.cancelled ?? false;
    for (const userId of this.state.joined ?? []) {
      this.inFlight.add(userId);
      this.joined.add(userId);
    }
    for (const userId of this.state.parkedUsers ?? []) {
      this.parkedInThisRun.add(userId);
      this.watchedParked.add(userId);
    }
    setHandler(batchProgressQuery, () => this.progress());
    setHandler(batchProblemsQuery, () => this.state.recentProblems);
    setHandler(pauseBatchUpdate, () => {
      this.state.paused = true;
      return this.progress();
    });
    setHandler(resumeBatchUpdate, () => {
      this.state.paused = false;
      delete this.state.sourceRefused;
      return this.progress();
    });
    setHandler(cancelBatchUpdate, () => {
      this.cancel();
      return this.progress();
    });
    setHandler(childParkedSignal, (signal) => {
      // Only children send this (encrypted); anything else, e.g. an unencrypted signal, is ignored.
      if (isUnencryptedPayload(signal) || typeof signal?.userId !== 'string') return;
      this.parked(signal.userId, String(signal.reason));
    });
  }

  cancel(): void {
    this.cancelled = true;
  }

  async run(): Promise<BatchReport> {
    void this.pollJoined();
    while (!this.cancelled) {
      if (this.shouldContinueAsNew()) {
        // Children are awaited (their results come to this run); joined backups travel along.
        await condition(() => this.inFlight.size === this.joined.size);
        // A cancel that arrived while draining ends the batch here instead of in the next run.
        if (this.cancelled) break;
        await this.continueAsNewNow();
      }
      await condition(() => !this.state.paused || this.cancelled);
      if (this.cancelled) break;
      await this.refill();
      if (this.state.pending.length === 0) {
        if (this.state.sourceExhausted) break;
        continue;
      }
      await condition(() => this.inFlight.size < this.input.concurrency || this.cancelled || this.state.paused);
      if (this.cancelled || this.state.paused) continue;
      // Workflow time stands still within a task, so several starts due within a few milliseconds
      // go out together; a timer only when the pace really asks to wait.
      const wait = this.nextStartAt - Date.now();
      if (wait >= MIN_PACING_SLEEP_MS && (await condition(() => this.cancelled || this.state.paused, wait))) continue;
      // A fixed schedule: a start that came late is made up by the next ones, so delays do not add
      // up over the batch; catching up is bounded to a few seconds' worth (e.g. after a pause).
      this.nextStartAt = Math.max(this.nextStartAt + this.intervalMs, Date.now() - Math.max(this.intervalMs, MAX_CATCH_UP_MS));
      // Not awaited: many children start in one workflow task instead of one task per child.
      void this.launch(this.state.pending.shift()!);
      this.startsThisRun += 1;
    }
    // Drain: every backup in flight finishes (parked ones are reported, and keep waiting for an
    // operator). Joined backups can run for long: past the history limit, continue as new with them.
    for (;;) {
      await condition(() => this.inFlight.size === 0 || (this.inFlight.size === this.joined.size && this.shouldContinueAsNew()));
      if (this.inFlight.size === 0) break;
      await this.continueAsNewNow();
    }
    await condition(allHandlersFinished);
    const problemsOmitted = this.state.counts.failed + this.state.counts.parked - this.state.recentProblems.length;
    return {
      ...this.progress(),
      status: this.cancelled ? 'CANCELLED' : 'COMPLETED',
      problems: this.state.recentProblems,
      ...(problemsOmitted > 0 ? { problemsOmitted } : {}),
      finishedAt: new Date(Date.now()).toISOString(),
    };
  }

  private shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    return (
      this.startsThisRun >= (this.input.startsPerRun ?? DEFAULT_STARTS_PER_RUN) ||
      info.continueAsNewSuggested ||
      info.historyLength >= (this.input.maxHistoryEventsPerRun ?? MAX_HISTORY_EVENTS_PER_RUN)
    );
  }

  private async continueAsNewNow(): Promise<never> {
    await condition(allHandlersFinished);
    return makeContinueAsNewFunc<typeof batchBackup>(UPGRADE_ON_CONTINUE_AS_NEW)({
      ...this.input,
      ...this.nextRunSource(),
      carried: {
        ...this.state,
        runs: this.state.runs + 1,
        joined: [...this.joined],
        cancelled: this.cancelled,
        parkedUsers: [...this.parkedInThisRun].slice(-MAX_CARRIED_PARKED),
      },
    });
  }

  /** A list source travels on with only the ids not yet taken. */
  private nextRunSource(): Partial<BatchBackupInput> {
    return this.input.source.kind === 'list' ? { source: { kind: 'list', userIds: this.list } } : {};
  }

  private progress(): BatchProgress {
    const { counts, sourceExhausted, pending } = this.state;
    const now = Date.now();
    const lastMinute = this.completionTimes.filter((at) => at >= now - 60_000).length;
    const elapsedMin = Math.min(1, (now - Date.parse(this.state.startedAt)) / 60_000);
    const ratePerMinute = elapsedMin > 0 ? lastMinute / elapsedMin : 0;
    const total =
      this.state.listTotal ?? (sourceExhausted ? counts.started + counts.joined + counts.skipped + pending.length : undefined);
    const done = counts.completed + counts.failed + counts.parked + counts.skipped;
    return {
      batchId: this.input.batchId,
      status: this.cancelled ? 'CANCELLING' : this.state.paused ? 'PAUSED' : 'RUNNING',
      ...(total !== undefined ? { total } : {}),
      counts: { ...counts },
      inFlight: this.inFlight.size,
      ratePerMinute: Math.round(ratePerMinute * 10) / 10,
      ...(total !== undefined && ratePerMinute > 0 ? { etaSeconds: Math.round(((total - done) / ratePerMinute) * 60) } : {}),
      backupsPerMinute: this.input.backupsPerMinute,
      concurrency: this.input.concurrency,
      runs: this.state.runs,
      startedAt: this.state.startedAt,
      ...(this.state.sourceRefused ? { sourceRefused: this.state.sourceRefused } : {}),
    };
  }

  private recordProblem(problem: BatchProblem): void {
    this.state.recentProblems.push(problem);
    if (this.state.recentProblems.length > MAX_RECENT_PROBLEMS) this.state.recentProblems.shift();
    log.warn('backup problem in batch', { batchId: this.input.batchId, ...problem });
  }

  private parked(userId: string, reason: string): void {
    if (!this.inFlight.delete(userId)) return;
    // A joined backup that parks stays watched, so its later completion is counted.
    if (this.joined.delete(userId)) this.watchedParked.add(userId);
    this.parkedInThisRun.add(userId);
    this.state.counts.parked += 1;
    countBatchChildren('parked');
    this.recordProblem({ userId, status: 'NEEDS_ATTENTION', reason });
  }

  private settle(userId: string, outcome: { ok: true } | { ok: false; reason: string }): void {
    if (this.parkedInThisRun.delete(userId)) {
      // It was parked and an operator resolved it while the batch still ran.
      this.state.counts.parked -= 1;
      this.state.recentProblems = this.state.recentProblems.filter((p) => !(p.userId === userId && p.status === 'NEEDS_ATTENTION'));
    } else if (!this.inFlight.delete(userId)) {
      return;
    }
    countBatchChildren(outcome.ok ? 'completed' : 'failed');
    if (outcome.ok) {
      this.state.counts.completed += 1;
      this.completionTimes.push(Date.now());
      while (this.completionTimes.length && this.completionTimes[0]! < Date.now() - 60_000) this.completionTimes.shift();
    } else {
      this.state.counts.failed += 1;
      this.recordProblem({ userId, status: 'FAILED', reason: outcome.reason });
    }
  }

  private async launch(userId: string): Promise<void> {
    this.inFlight.add(userId);
    try {
      const child = await startChild(backupWallet, {
        workflowId: backupWorkflowId(userId),
        args: [{ userId }],
        typedSearchAttributes: new TypedSearchAttributes([
          ...initialBackupSearchAttributes().getAll(),
          { key: BatchIdKey, value: this.input.batchId },
        ]),
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        // A backup must never be cut short by its batch: after step 3 that would strand shares.
        parentClosePolicy: ParentClosePolicy.ABANDON,
        cancellationType: ChildWorkflowCancellationType.ABANDON,
      });
      this.state.counts.started += 1;
      countBatchChildren('started');
      void child.result().then(
        () => this.settle(userId, { ok: true }),
        (error: unknown) => this.settle(userId, { ok: false, reason: failureReason(error) }),
      );
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) {
        this.settle(userId, { ok: false, reason: `could not start its backup: ${failureReason(error)}` });
        return;
      }
      this.state.counts.joined += 1;
      countBatchChildren('joined');
      this.joined.add(userId);
      this.joinedPollMs = JOINED_POLL_FIRST_MS;
    }
  }

  /**
   * Looks at joined backups with one short activity, first after 5 s, then backing off to every 5
   * minutes while they all still run (a backup in a long outage retries for hours), for the run's
   * whole life. A look that fails for good is logged and tried again at the next interval.
   */
  private async pollJoined(): Promise<void> {
    for (;;) {
      await condition(() => this.joined.size + this.watchedParked.size > 0);
      await sleep(this.joinedPollMs);
      this.joinedPollMs = Math.min(this.joinedPollMs * 2, JOINED_POLL_MAX_MS);
      if (this.joined.size + this.watchedParked.size === 0) continue;
      let checks: BackupCheck[];
      try {
        checks = await sourceActivities.checkBackups({ userIds: [...this.joined, ...this.watchedParked] });
      } catch (error) {
        log.warn('could not look at joined backups; will look again', { batchId: this.input.batchId, reason: failureReason(error) });
        continue;
      }
      for (const check of checks) {
        if (this.watchedParked.has(check.userId)) {
          if (check.state !== 'COMPLETED' && check.state !== 'FAILED') continue;
          this.watchedParked.delete(check.userId);
          this.settle(check.userId, check.state === 'COMPLETED' ? { ok: true } : { ok: false, reason: check.reason ?? 'did not complete' });
          continue;
        }
        if (!this.joined.has(check.userId) || check.state === 'RUNNING') continue;
        if (check.state === 'PARKED') {
          // Parked elsewhere: it frees its slot and is reported like a parked child.
          this.parked(check.userId, check.reason ?? 'parked');
        } else {
          this.joined.delete(check.userId);
          this.settle(check.userId, check.state === 'COMPLETED' ? { ok: true } : { ok: false, reason: check.reason ?? 'did not complete' });
        }
      }
    }
  }

  private async refill(): Promise<void> {
    const state = this.state;
    if (state.pending.length > 0 || state.sourceExhausted) return;
    let page: string[];
    if (this.input.source.kind === 'list') {
      page = this.list.slice(0, this.pageSize);
      this.list = this.list.slice(page.length);
      state.sourceExhausted = this.list.length === 0;
    } else {
      const url = this.input.source.url;
      const fetch = () => sourceActivities.fetchUserPage({ url, cursor: state.cursor, limit: this.pageSize });
      const fetched = await fetchPageOrPause(fetch, state.cursor, (reason) => {
        state.paused = true;
        state.sourceRefused = reason;
        log.warn('batch paused: its user source refused a page', { batchId: this.input.batchId, reason });
      });
      if (!fetched) return;
      page = fetched.userIds;
      if (fetched.nextCursor) state.cursor = fetched.nextCursor;
      state.sourceExhausted = !fetched.nextCursor;
    }
    if (this.input.skipIfBackedUpSince && page.length > 0) {
      const recent = new Set(await sourceActivities.recentlyBackedUp({ userIds: page, since: this.input.skipIfBackedUpSince }));
      const skipped = page.filter((id) => recent.has(id)).length;
      state.counts.skipped += skipped;
      countBatchChildren('skipped', skipped);
      page = page.filter((id) => !recent.has(id));
    }
    // A source may list a user twice: one backup each, not a second join of the same run.
    const queued = new Set([...state.pending, ...this.inFlight]);
    state.pending.push(...page.filter((id) => !queued.has(id) && (queued.add(id), true)));
  }
}

/** The state this run starts from: fresh, or carried from the previous run. */
function carriedState(input: BatchBackupInput): BatchCarriedState {
  if (input.carried) return input.carried;
  return {
    version: 2,
    ...(input.source.kind === 'list' ? { listTotal: input.source.userIds.length } : {}),
    sourceExhausted: false,
    pending: [],
    counts: { started: 0, completed: 0, failed: 0, parked: 0, skipped: 0, joined: 0 },
    recentProblems: [],
    startedAt: new Date(Date.now()).toISOString(),
    paused: false,
    runs: 1,
  };
}

function failureReason(error: unknown): string {
  if (error instanceof ChildWorkflowFailure && error.cause) {
    const cause = error.cause;
    return cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}
