import { allHandlersFinished, ApplicationFailure, ChildWorkflowCancellationType, condition, log, ParentClosePolicy, patched, setHandler, sleep, startChild } from '@temporalio/workflow';
import { TypedSearchAttributes, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { BackupCheck } from '../activities/batch/batch-activities';
import { backupWorkflowId } from '../domain/user-id';
import { backupWallet } from './backup-wallet';
import { initialBackupSearchAttributes } from '../contracts/backup-wallet-api';
import { BATCH_CHILD_PRIORITY_PATCH, BATCH_PRIORITY } from '../contracts/run-priority';
import { countBatchChildren } from './workflow-metrics';
import {
  continueAsNewUpgrading,
  failureReason,
  FleetControl,
  listTooLong,
  Pacer,
  pushBounded,
  RateWindow,
  readOnly,
  shouldContinueAsNew,
  UserSource,
} from './fleet-run';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import {
  BatchIdKey,
  batchProblemsQuery,
  batchProgressQuery,
  cancelBatchUpdate,
  childParkedSignal,
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

const DEFAULT_PAGE_SIZE = 200;
/** After this many child starts in one run, drain and continue as new to keep history bounded. */
const DEFAULT_STARTS_PER_RUN = 500;
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
  const tooLong = listTooLong(input.source, input.carried);
  if (tooLong) throw ApplicationFailure.nonRetryable(`${tooLong}, or start one batch per chunk`, 'BatchOptionsError');
  const batch = new BatchRun(input);
  // Backups must never be cut short by their batch (after step 3 that would strand shares).
  return batch.control.shielded('batch', () => batch.run());
}

/** One run (between continue-as-new) of a batch. */
class BatchRun {
  private readonly state: BatchCarriedState;
  readonly control: FleetControl;
  private readonly source: UserSource;
  private readonly pacer: Pacer;
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
  private readonly completions = new RateWindow();
  private startsThisRun = 0;
  private joinedPollMs = JOINED_POLL_FIRST_MS;

  constructor(private readonly input: BatchBackupInput) {
    this.state = carriedState(input);
    this.control = new FleetControl(this.state);
    this.source = new UserSource(input.source, input.pageSize ?? DEFAULT_PAGE_SIZE, this.state, this.control, 'batch');
    this.pacer = new Pacer(input.backupsPerMinute);
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
    this.control.handleUpdates({ pause: pauseBatchUpdate, resume: resumeBatchUpdate, cancel: cancelBatchUpdate }, () => this.progress(), 'batch');
    setHandler(childParkedSignal, (signal) => {
      // Only children send this (encrypted); anything else, e.g. an unencrypted signal, is ignored.
      if (isUnencryptedPayload(signal) || typeof signal?.userId !== 'string') return;
      this.parked(signal.userId, String(signal.reason));
    });
  }

  async run(): Promise<BatchReport> {
    void this.pollJoined();
    await this.startAll();
    await this.drain();
    await condition(allHandlersFinished);
    const problemsOmitted = this.state.counts.failed + this.state.counts.parked - this.state.recentProblems.length;
    return {
      ...this.progress(),
      status: this.control.cancelled ? 'CANCELLED' : 'COMPLETED',
      problems: this.state.recentProblems,
      ...(problemsOmitted > 0 ? { problemsOmitted } : {}),
      finishedAt: new Date(Date.now()).toISOString(),
    };
  }

  /** Starts a backup for every user of the source, paced, in the window, until the source is done or the batch cancelled. */
  private async startAll(): Promise<void> {
    const { control, state } = this;
    while (!control.cancelled) {
      if (this.shouldContinueAsNew()) {
        // Children are awaited (their results come to this run); joined backups travel along.
        await condition(() => this.inFlight.size === this.joined.size);
        // A cancel that arrived while draining ends the batch here instead of in the next run.
        if (control.cancelled) break;
        await this.continueAsNewNow();
      }
      await condition(() => !control.paused || control.cancelled);
      if (control.cancelled) break;
      await this.refill();
      if (state.pending.length === 0) {
        if (this.source.exhausted) break;
        continue;
      }
      const interrupted = () => control.cancelled || control.paused;
      await condition(() => this.inFlight.size < this.input.concurrency || interrupted());
      if (interrupted() || !(await this.pacer.slot(1, interrupted))) continue;
      // Not awaited: many children start in one workflow task instead of one task per child.
      void this.launch(state.pending.shift()!);
      this.startsThisRun += 1;
    }
  }

  /**
   * Every backup in flight finishes (parked ones are reported, and keep waiting for an operator).
   * Joined backups can run for long: past the history limit, continue as new with them.
   */
  private async drain(): Promise<void> {
    for (;;) {
      await condition(() => this.inFlight.size === 0 || (this.inFlight.size === this.joined.size && this.shouldContinueAsNew()));
      if (this.inFlight.size === 0) return;
      await this.continueAsNewNow();
    }
  }

  private shouldContinueAsNew(): boolean {
    return shouldContinueAsNew(this.startsThisRun, this.input.startsPerRun ?? DEFAULT_STARTS_PER_RUN, this.input.maxHistoryEventsPerRun);
  }

  private continueAsNewNow(): Promise<never> {
    return continueAsNewUpgrading<typeof batchBackup>({
      ...this.input,
      ...this.source.nextRunSource(),
      carried: {
        ...this.state,
        runs: this.state.runs + 1,
        joined: [...this.joined],
        parkedUsers: [...this.parkedInThisRun].slice(-MAX_CARRIED_PARKED),
      },
    });
  }

  private progress(): BatchProgress {
    const { counts, sourceExhausted, pending } = this.state;
    const total =
      this.state.listTotal ?? (sourceExhausted ? counts.started + counts.joined + counts.skipped + pending.length : undefined);
    const done = counts.completed + counts.failed + counts.parked + counts.skipped;
    return {
      batchId: this.input.batchId,
      status: this.control.cancelled ? 'CANCELLING' : this.control.paused ? 'PAUSED' : 'RUNNING',
      ...(total !== undefined ? { total } : {}),
      counts: { ...counts },
      inFlight: this.inFlight.size,
      ...this.completions.report(this.state.startedAt, total, done),
      backupsPerMinute: this.input.backupsPerMinute,
      concurrency: this.input.concurrency,
      runs: this.state.runs,
      startedAt: this.state.startedAt,
      ...(this.state.sourceRefused ? { sourceRefused: this.state.sourceRefused } : {}),
    };
  }

  private recordProblem(problem: BatchProblem): void {
    pushBounded(this.state.recentProblems, problem, MAX_RECENT_PROBLEMS);
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
    this.count(userId, outcome);
  }

  private count(userId: string, outcome: { ok: true } | { ok: false; reason: string }): void {
    countBatchChildren(outcome.ok ? 'completed' : 'failed');
    if (outcome.ok) {
      this.state.counts.completed += 1;
      this.completions.record();
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
        // Behind interactive backups at the task queue and at Portal's limiter (contracts/run-priority.ts);
        // a run recorded before the patch replays its child starts without a priority.
        ...(patched(BATCH_CHILD_PRIORITY_PATCH) ? { priority: BATCH_PRIORITY } : {}),
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
        checks = await readOnly.checkBackups({ userIds: [...this.joined, ...this.watchedParked] });
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
    if (state.pending.length > 0 || this.source.exhausted) return;
    const page = await this.source.nextPage([...state.pending, ...this.inFlight]);
    if (!page) return;
    // An id that is not a user id is reported as failed, never started.
    for (const { userId, reason } of page.invalid) this.count(userId, { ok: false, reason });
    let userIds = page.userIds;
    if (this.input.skipIfBackedUpSince && userIds.length > 0) {
      const recent = new Set(await readOnly.recentlyBackedUp({ userIds, since: this.input.skipIfBackedUpSince }));
      state.counts.skipped += recent.size;
      countBatchChildren('skipped', recent.size);
      userIds = userIds.filter((id) => !recent.has(id));
    }
    state.pending.push(...userIds);
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
