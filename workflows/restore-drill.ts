import { ApplicationFailure, condition, log, ParentClosePolicy, proxyActivities, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import { TypedSearchAttributes, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DrillActivities } from '../activities/drill/drill-activities';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { DRILL_CHECK_OPTIONS } from '../contracts/fleet-timeouts';
import { continueAsNewUpgrading, FleetControl, listTooLong, Pacer, pushBounded, shouldContinueAsNew, UserSource } from './fleet-run';
import { refusedReceipts } from './receipt-checks';
import {
  DRILL_FAILED_STATUS,
  drillFindingWorkflowId,
  DrillIdKey,
  drillReportQuery,
  drillVerdictClaims,
  resumeDrillUpdate,
  MAX_REPORTED_FAILURES,
  type DrillCarriedState,
  type DrillFailure,
  type DrillFinding,
  type DrillReport,
  type DrillStatus,
  type DrillUserOutcome,
  type RestoreDrillInput,
} from '../contracts/restore-drill-api';

const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_CHECKS_PER_RUN = 200;
/** About 25 minutes of retries (1 s doubling to 1 min) before a user that cannot be checked is reported inconclusive. */
const DEFAULT_INCONCLUSIVE_AFTER_ATTEMPTS = 30;
/** A check activity covers about this many seconds of the pace, so load comes in small steps, not one burst per page. */
const CHECK_WINDOW_SECONDS = 10;

/** One look per user at Portal, the store and Vault; transient errors retry (never reported as failures). */
const checks = proxyActivities<DrillActivities>(DRILL_CHECK_OPTIONS);

/**
 * The restore drill: for every user of the source, checks that the newest completed backup could
 * restore the wallet (ciphertexts read from the store, decrypted in their user-and-pair context to
 * Portal's `{id, share}` of that pair; in Self-Managed mode, the custodian shares held and
 * decrypting) without ever calling /v1/recover. Users are checked at a fixed pace; each user whose
 * backup fails gets a `drillFinding` run marked with search attributes. History stays bounded by
 * continue-as-new; the report (counts, the most recent failures) is the `report` query and the result.
 */
export async function restoreDrill(input: RestoreDrillInput): Promise<DrillReport> {
  if (isUnencryptedPayload(input)) throw ApplicationFailure.nonRetryable(UNENCRYPTED_PAYLOAD_MESSAGE, 'UnencryptedPayloadError');
  if (!input?.source || !(input.usersPerMinute > 0) || (input.source.kind === 'list' && !Array.isArray(input.source.userIds))) {
    throw ApplicationFailure.nonRetryable('drill input is malformed: start drills with the project client or CLI', 'DrillOptionsError');
  }
  const tooLong = listTooLong(input.source, input.carried);
  if (tooLong) throw ApplicationFailure.nonRetryable(tooLong, 'DrillOptionsError');
  return new DrillRun(input).run();
}

/**
 * One verdict per user of the chunk, each as the worker made it (its receipt verified), else
 * inconclusive: a result completed from outside (any payload, with or without the codec key), a
 * verdict altered, missing or not of this chunk is never counted as passed or failed.
 */
async function verifiedVerdicts(chunk: string[], returned: unknown): Promise<DrillUserOutcome[]> {
  const listed = Array.isArray(returned) ? (returned as DrillUserOutcome[]) : [];
  const verdicts = chunk.map((userId) => listed.find((outcome) => typeof outcome === 'object' && outcome !== null && outcome.userId === userId));
  const refusals = await refusedReceipts(
    verdicts.flatMap((verdict) => (verdict && typeof verdict.outcome === 'string' ? [{ step: 'DRILL_VERDICT' as const, claims: drillVerdictClaims(verdict), receipt: verdict.receipt }] : [])),
  );
  let next = 0;
  return chunk.map((userId, i) => {
    const verdict = verdicts[i];
    const refused = verdict && typeof verdict.outcome === 'string' ? refusals[next++] : 'no verdict for this user was returned';
    if (verdict && refused === null) {
      const { receipt: _receipt, ...counted } = verdict;
      return counted as DrillUserOutcome;
    }
    log.warn('restore drill: a verdict not made by a worker of this drill was not counted', { userId });
    return {
      userId,
      outcome: 'inconclusive',
      reason: `the check's verdict was not made by a worker of this drill (completed from outside, or altered): not counted; check this user again (${refused})`,
    };
  });
}

/**
 * A finding: completes at once. It exists to carry the search attributes (BackupStatus =
 * DRILL_FAILED, BackupStep = kind, DrillId) that let operators filter failing backups, and the
 * finding itself as its result.
 */
export async function drillFinding(finding: DrillFinding): Promise<DrillFinding> {
  if (isUnencryptedPayload(finding)) throw ApplicationFailure.nonRetryable(UNENCRYPTED_PAYLOAD_MESSAGE, 'UnencryptedPayloadError');
  return finding;
}

/** One run (between continue-as-new) of a drill. */
class DrillRun {
  private readonly drillId = workflowInfo().workflowId;
  private readonly state: DrillCarriedState;
  private readonly control: FleetControl;
  private readonly source: UserSource;
  private readonly pacer: Pacer;
  private readonly chunkSize: number;
  private checksThisRun = 0;

  constructor(private readonly input: RestoreDrillInput) {
    const pageSize = Math.max(1, input.pageSize ?? DEFAULT_PAGE_SIZE);
    this.chunkSize = Math.max(1, Math.min(pageSize, Math.ceil((input.usersPerMinute * CHECK_WINDOW_SECONDS) / 60)));
    this.state = input.carried ?? initialState(input);
    // A drill pauses only when its source refuses a page.
    this.control = new FleetControl(this.state);
    this.source = new UserSource(input.source, pageSize, this.state, this.control, 'restore drill');
    this.pacer = new Pacer(input.usersPerMinute, this.state.nextCheckAt);
    setHandler(drillReportQuery, () => this.report(this.control.paused ? 'PAUSED' : 'RUNNING'));
    this.control.handleControl(resumeDrillUpdate, 'resume', () => this.report('RUNNING'), 'drill', () => {
      if (!this.control.sourceRefused) throw new Error(`drill ${this.drillId} is not paused: only a drill whose source refused a page resumes`);
    });
  }

  async run(): Promise<DrillReport> {
    for (;;) {
      if (shouldContinueAsNew(this.checksThisRun, this.input.checksPerRun ?? DEFAULT_CHECKS_PER_RUN, this.input.maxHistoryEventsPerRun)) {
        await this.continueAsNewNow();
      }
      await condition(() => !this.control.paused);
      await this.refill();
      if (this.state.pending.length === 0) {
        if (this.source.exhausted) break;
        continue;
      }
      await this.pacer.slot(Math.min(this.chunkSize, this.state.pending.length), () => false);
      this.state.nextCheckAt = this.pacer.nextStartAt;
      await this.check(this.state.pending.splice(0, this.chunkSize));
    }
    const report = this.report('COMPLETED');
    log.info('restore drill finished', { drillId: this.drillId, ...report.counts });
    return report;
  }

  /** One check activity over `chunk`; only verdicts with their worker's receipt count. */
  private async check(chunk: string[]): Promise<void> {
    const returned = await checks.checkDrillUsers({
      userIds: chunk,
      inconclusiveAfterAttempts: this.input.inconclusiveAfterAttempts ?? DEFAULT_INCONCLUSIVE_AFTER_ATTEMPTS,
    });
    const outcomes = await verifiedVerdicts(chunk, returned);
    this.checksThisRun += 1;
    await Promise.all(outcomes.map((outcome) => this.record(outcome)));
  }

  private continueAsNewNow(): Promise<never> {
    return continueAsNewUpgrading<typeof restoreDrill>({
      ...this.input,
      ...this.source.nextRunSource(),
      carried: { ...this.state, runs: this.state.runs + 1 },
    });
  }

  private async refill(): Promise<void> {
    if (this.state.pending.length > 0 || this.source.exhausted) return;
    const page = await this.source.nextPage([]);
    if (!page) return;
    // An id that is not a user id cannot be checked: reported inconclusive, never checked.
    for (const { userId, reason } of page.invalid) await this.record({ userId, outcome: 'inconclusive', reason });
    this.state.pending.push(...page.userIds);
  }

  private async record(outcome: DrillUserOutcome): Promise<void> {
    const { counts } = this.state;
    counts.checked += 1;
    switch (outcome.outcome) {
      case 'passed':
        counts.passed += 1;
        return;
      case 'skipped':
        counts.skipped += 1;
        pushBounded((this.state.skipped ??= []), { userId: outcome.userId, reason: outcome.reason }, MAX_REPORTED_FAILURES);
        return;
      case 'inconclusive':
        counts.inconclusive += 1;
        pushBounded(this.state.inconclusive, { userId: outcome.userId, reason: outcome.reason }, MAX_REPORTED_FAILURES);
        log.warn('restore drill: a user could not be checked', { drillId: this.drillId, userId: outcome.userId, reason: outcome.reason });
        return;
      case 'failed': {
        counts.failed += 1;
        const failure: DrillFailure = { userId: outcome.userId, kind: outcome.kind, reason: outcome.reason, checkedAt: new Date(Date.now()).toISOString() };
        pushBounded(this.state.failures, failure, MAX_REPORTED_FAILURES);
        log.warn('restore drill: a stored backup fails', { drillId: this.drillId, userId: failure.userId, kind: failure.kind, reason: failure.reason });
        await markFailed(this.drillId, failure);
        return;
      }
    }
  }

  private report(status: DrillStatus): DrillReport {
    const { counts, failures, inconclusive, sourceExhausted, pending, skipped = [] } = this.state;
    const total = this.state.listTotal ?? (sourceExhausted ? counts.checked + pending.length : undefined);
    return {
      drillId: this.drillId,
      status,
      ...(total !== undefined ? { total } : {}),
      counts: { ...counts },
      usersPerMinute: this.input.usersPerMinute,
      runs: this.state.runs,
      startedAt: this.state.startedAt,
      ...(status === 'COMPLETED' ? { finishedAt: new Date(Date.now()).toISOString() } : {}),
      failures: [...failures],
      ...(counts.failed > failures.length ? { failuresOmitted: counts.failed - failures.length } : {}),
      inconclusive: [...inconclusive],
      ...(counts.inconclusive > inconclusive.length ? { inconclusiveOmitted: counts.inconclusive - inconclusive.length } : {}),
      skipped: [...skipped],
      ...(counts.skipped > skipped.length ? { skippedOmitted: counts.skipped - skipped.length } : {}),
      ...(this.state.sourceRefused ? { sourceRefused: this.state.sourceRefused } : {}),
    };
  }
}

function initialState(input: RestoreDrillInput): DrillCarriedState {
  return {
    ...(input.source.kind === 'list' ? { listTotal: new Set(input.source.userIds).size } : {}),
    sourceExhausted: false,
    pending: [],
    counts: { checked: 0, passed: 0, failed: 0, skipped: 0, inconclusive: 0 },
    failures: [],
    inconclusive: [],
    skipped: [],
    startedAt: new Date(Date.now()).toISOString(),
    nextCheckAt: Date.now(),
    runs: 1,
  };
}

/**
 * Marks a failing backup: a `drillFinding` run that completes at once and carries BackupStatus =
 * DRILL_FAILED, BackupStep = the kind and DrillId, so visibility lists every failure of a drill
 * however many there are. Its id names drill and user: a user listed twice is marked once.
 */
async function markFailed(drillId: string, failure: DrillFailure): Promise<void> {
  try {
    await startChild(drillFinding, {
      workflowId: drillFindingWorkflowId(drillId, failure.userId),
      args: [{ ...failure, drillId }],
      typedSearchAttributes: new TypedSearchAttributes([
        { key: BackupStatusKey, value: DRILL_FAILED_STATUS },
        { key: BackupStepKey, value: failure.kind },
        { key: DrillIdKey, value: drillId },
      ]),
      memo: { userId: failure.userId, reason: failure.reason },
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
  }
}
