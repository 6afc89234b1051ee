import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  log,
  makeContinueAsNewFunc,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { BatchActivities } from '../activities/batch/batch-activities';
import type { KeyRotationActivities } from '../activities/rotation/key-rotation-activities';
import type { RotationCensusActivities } from '../activities/rotation/rotation-census';
import { PERMANENT_ERROR_TYPES } from '../domain/errors';
import { STEP_OPTIONS, TRANSIENT_RETRY_MAX_INTERVAL } from '../contracts/step-timeouts';
import { fetchPageOrPause } from './source-pages';
import { UPGRADE_ON_CONTINUE_AS_NEW } from './fleet-run';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import {
  addRotationCounts,
  cancelRotationUpdate,
  emptyRotationCounts,
  MAX_DEFERRED_USERS,
  MAX_LIST_USER_IDS,
  MAX_RECENT_ROTATION_FAILURES,
  pauseRotationUpdate,
  resumeRotationUpdate,
  rotationFailuresQuery,
  rotationProgressQuery,
  type MinDecryptionVersionOutcome,
  type RewrapUsersResult,
  type RotateKeysInput,
  type RotationCensus,
  type RotationCarriedState,
  type RotationFailure,
  type RotationProgress,
  type RotationReport,
  type RotationStatus,
} from '../contracts/rotate-keys-api';

/** The key step, before anything changed: transient errors retry; permanent ones (a policy without rotate) fail the rotation at once. */
const keyActivities = proxyActivities<KeyRotationActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL, nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES] },
});

/**
 * The check and the raise, after the whole pass: a token without `keys/<key>/config` is retried
 * until the policy is fixed (visible in `keys status`), so the pass is never lost to it.
 */
const finishActivities = proxyActivities<KeyRotationActivities>({
  startToCloseTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL,
    nonRetryableErrorTypes: PERMANENT_ERROR_TYPES.filter((type) => type !== 'VaultPermissionError' && type !== 'KmsPermissionError'),
  },
});

/**
 * The rewrap of a few users: heartbeats carry its checkpoint (per ciphertext), so a worker killed
 * mid-way is noticed within the heartbeat timeout and the next attempt resumes at the ciphertext it
 * was on. Unlimited attempts: per-user permanent problems come back as results, not failures.
 */
const rewrapActivities = proxyActivities<KeyRotationActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: STEP_OPTIONS.heartbeatTimeout,
  // A failed attempt sets its own next retry delay (retryDelayAfterFailureMs: soon while its
  // checkpoint moves, once a minute after two minutes without progress), so this policy paces only
  // the retries after a heartbeat timeout: the worker died, not Portal or Vault, and the next
  // attempt resumes at its checkpoint on another worker at once. (The doubling by attempt count it
  // had added up to 10 s after each worker kill, since a long rewrap has many failed attempts.)
  retry: { initialInterval: '1 second', backoffCoefficient: 1 },
});

/**
 * The census before the raise over a store that cannot be listed: every stored ciphertext of the
 * source read again by a worker (activities/rotation/rotation-census.ts). Long, so checkpointed in
 * heartbeats like the rewrap; a source that refuses a page fails it, and the raise is not made.
 */
const censusActivities = proxyActivities<RotationCensusActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: STEP_OPTIONS.heartbeatTimeout,
  retry: { initialInterval: '1 second', backoffCoefficient: 1, nonRetryableErrorTypes: ['BatchSourceNotAllowedError', 'UserSourceRefusedError'] },
});

/** The batch's own user-source activity: the same allowlist (BATCH_SOURCE_ALLOWED_ORIGINS) applies. */
const sourceActivities = proxyActivities<BatchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['BatchSourceNotAllowedError', 'CredentialsInvalidError'] },
});

const DEFAULT_USERS_PER_ACTIVITY = 10;
const DEFAULT_PAGE_SIZE = 200;
/** After this many rewrap activities in one run, drain and continue as new to keep history bounded. */
const DEFAULT_ACTIVITIES_PER_RUN = 300;
const MAX_HISTORY_EVENTS_PER_RUN = 10_000;
const MIN_PACING_SLEEP_MS = 20;
const MAX_CATCH_UP_MS = 5_000;
/** Users deferred (their pre-rotation backup was running) are looked at again after 30 s, then less often, up to every 5 min. */
const DEFERRED_RECHECK_FIRST_MS = 30_000;
const DEFERRED_RECHECK_MAX_MS = 5 * 60_000;
/** How many deferred users the progress query names. */
const DEFERRED_SHOWN = 20;

/**
 * Rotates the Transit key and rewraps every stored ciphertext to the new version: the client
 * backup shares in the ciphertext store (for every pair Portal lists for each user of the source)
 * and, in Self-Managed mode, the custodian shares the webhook holds. Each is written back only if
 * unchanged, read back and decrypted to the same bytes. Only when every one is verified, and if
 * asked, min_decryption_version goes up to the new version. Paced and paged like a batch, pause,
 * resume and cancel by update; the key step is recorded once, so a resumed or continued run never
 * rotates again.
 */
export async function rotateKeys(input: RotateKeysInput): Promise<RotationReport> {
  if (isUnencryptedPayload(input)) throw ApplicationFailure.nonRetryable(UNENCRYPTED_PAYLOAD_MESSAGE, 'UnencryptedPayloadError');
  const problem = inputProblem(input);
  if (problem) throw ApplicationFailure.nonRetryable(`key rotation input is malformed: ${problem}; start rotations with the project client or CLI`, 'KeyRotationOptionsError');
  const rotation = new RotationRun(input);
  // A Temporal cancel (Web UI) acts as the cancel update: activities in flight finish, the report is the result.
  CancellationScope.current().cancelRequested.catch(() => rotation.cancel());
  return CancellationScope.nonCancellable(() => rotation.run());
}

function inputProblem(input: RotateKeysInput): string | undefined {
  if (typeof input?.rotationId !== 'string' || input.rotationId.length === 0) return 'rotationId is missing';
  if (!input.source || (input.source.kind !== 'list' && input.source.kind !== 'http')) return 'source must be a list or an http source';
  if (input.source.kind === 'list' && !input.carried && input.source.userIds.length > MAX_LIST_USER_IDS) {
    return `a list source holds at most ${MAX_LIST_USER_IDS} user ids (got ${input.source.userIds.length}): use a paged source`;
  }
  if (!(input.usersPerMinute > 0)) return 'usersPerMinute must be positive';
  if (!(input.concurrency >= 1)) return 'concurrency must be at least 1';
  if (input.usersPerActivity !== undefined && !(input.usersPerActivity >= 1)) return 'usersPerActivity must be at least 1';
  return undefined;
}

/** One run (between continue-as-new) of a rotation. */
class RotationRun {
  private readonly state: Omit<RotationCarriedState, 'key'> & Partial<Pick<RotationCarriedState, 'key'>>;
  private readonly intervalMs: number;
  private readonly usersPerActivity: number;
  private list: string[];
  private readonly censusSource: RotateKeysInput['source'] | undefined;
  private phase: RotationStatus = 'ROTATING_KEY';
  private activitiesInFlight = 0;
  private usersInFlight = 0;
  private activitiesThisRun = 0;
  private nextStartAt = Date.now();
  private readonly visitTimes: number[] = [];

  constructor(private readonly input: RotateKeysInput) {
    this.intervalMs = 60_000 / input.usersPerMinute;
    this.usersPerActivity = input.usersPerActivity ?? DEFAULT_USERS_PER_ACTIVITY;
    this.state = input.carried ?? {
      version: 1,
      ...(input.source.kind === 'list' ? { listTotal: input.source.userIds.length } : {}),
      sourceExhausted: false,
      pending: [],
      deferred: [],
      counts: emptyRotationCounts(),
      failures: [],
      startedAt: new Date(Date.now()).toISOString(),
      paused: false,
      cancelled: false,
      runs: 1,
    };
    this.list = input.source.kind === 'list' ? [...input.source.userIds] : [];
    // The whole source, for the census: a list source travels on with only the ids not taken yet.
    // Only a continued run takes it from its input: a first run's is its own source (a starter cannot narrow the census).
    this.censusSource = !input.carried ? input.source : (input.censusSource ?? (input.source.kind === 'list' ? undefined : input.source));
    if (this.state.key) this.phase = 'REWRAPPING';
    setHandler(rotationProgressQuery, () => this.progress());
    setHandler(rotationFailuresQuery, () => this.state.failures);
    setHandler(pauseRotationUpdate, () => {
      this.state.paused = true;
      return this.progress();
    });
    setHandler(resumeRotationUpdate, () => {
      this.state.paused = false;
      delete this.state.sourceRefused;
      return this.progress();
    });
    setHandler(cancelRotationUpdate, () => {
      this.cancel();
      return this.progress();
    });
  }

  cancel(): void {
    this.state.cancelled = true;
  }

  async run(): Promise<RotationReport> {
    if (!this.state.key && !this.state.cancelled) await this.rotateKey();
    if (this.state.key) {
      await this.rewrapPass();
      await this.revisitDeferred(0);
    }
    await condition(() => this.activitiesInFlight === 0);
    const minDecryptionVersion = await this.maybeRaiseMinDecryptionVersion();
    await condition(allHandlersFinished);
    const failuresOmitted = this.failureCount() - this.state.failures.length;
    const finishedAt = Date.now();
    return {
      ...this.progress(),
      status: this.state.cancelled ? 'CANCELLED' : this.failureCount() > 0 || this.state.deferred.length > 0 ? 'COMPLETED_WITH_FAILURES' : 'COMPLETED',
      minDecryptionVersion,
      failures: this.state.failures,
      ...(failuresOmitted > 0 ? { failuresOmitted } : {}),
      finishedAt: new Date(finishedAt).toISOString(),
      durationMs: finishedAt - Date.parse(this.state.startedAt),
    };
  }

  /** Step 1, once per rotation: the versions before, then a new one unless the key is past them already. */
  private async rotateKey(): Promise<void> {
    const before = await keyActivities.readTransitKey();
    let targetVersion = before.latestVersion;
    let rotatedByThisRun = false;
    if (this.input.rotate !== false) {
      const rotated = await keyActivities.rotateTransitKey({ rotationId: this.input.rotationId, expectedLatestVersion: before.latestVersion });
      targetVersion = rotated.latestVersion;
      rotatedByThisRun = rotated.rotated;
    }
    this.state.key = {
      keyName: before.keyName,
      fromVersion: before.latestVersion,
      targetVersion,
      rotatedByThisRun,
      rotatedAt: new Date(Date.now()).toISOString(),
      minDecryptionVersionBefore: before.minDecryptionVersion,
    };
    this.phase = 'REWRAPPING';
    log.info('key rotation: rewrapping to the new key version', { rotationId: this.input.rotationId, ...this.state.key, store: before.storeKind });
  }

  /** Step 2: every user of the source, in paced rewrap activities, a few users each. */
  private async rewrapPass(): Promise<void> {
    while (!this.state.cancelled) {
      if (this.shouldContinueAsNew()) await this.continueAsNewNow();
      if (this.state.deferred.length >= MAX_DEFERRED_USERS) {
        // Too many users wait for their backups: see to them before taking more.
        await this.revisitDeferred(MAX_DEFERRED_USERS / 2);
        continue;
      }
      // Paused by its source (only runs since source-refusal-pauses are): wait for resume, then ask again.
      await condition(() => this.state.sourceRefused === undefined || this.state.cancelled);
      if (this.state.cancelled) break;
      await this.refill();
      if (this.state.pending.length === 0) {
        if (this.state.sourceExhausted) break;
        continue;
      }
      const chunk = await this.pacedChunk(this.state.pending);
      if (chunk) void this.launch(chunk);
    }
    await condition(() => this.activitiesInFlight === 0);
  }

  /**
   * Users whose pre-rotation backup was running are looked at again, after 30 s and then less
   * often (a parked backup waits for an operator), until at most `until` remain.
   */
  private async revisitDeferred(until: number): Promise<void> {
    let waitMs = this.input.deferredRecheckMs ?? DEFERRED_RECHECK_FIRST_MS;
    while (this.state.deferred.length > until && !this.state.cancelled) {
      await condition(() => this.activitiesInFlight === 0);
      if (this.shouldContinueAsNew()) await this.continueAsNewNow();
      this.phase = 'WAITING_FOR_BACKUPS';
      if (await condition(() => this.state.cancelled, waitMs)) break;
      waitMs = Math.min(waitMs * 2, this.input.deferredRecheckMaxMs ?? DEFERRED_RECHECK_MAX_MS);
      const users = this.state.deferred.splice(0);
      this.phase = 'REWRAPPING';
      while (users.length > 0 && !this.state.cancelled) {
        const chunk = await this.pacedChunk(users);
        if (chunk) void this.launch(chunk);
      }
      // A cancel leaves the rest deferred: they are counted in the report.
      this.state.deferred.push(...users);
      await condition(() => this.activitiesInFlight === 0);
    }
  }

  /**
   * Waits for a free slot, a resume and the pace, then takes the next users off `queue`.
   * Undefined when a pause or cancel came first (nothing taken).
   */
  private async pacedChunk(queue: string[]): Promise<string[] | undefined> {
    await condition(() => (this.activitiesInFlight < this.input.concurrency && !this.state.paused) || this.state.cancelled);
    if (this.state.cancelled) return undefined;
    const size = Math.min(this.usersPerActivity, queue.length);
    // A fixed schedule, as the batch's: a late start is made up by the next ones, bounded to a few
    // seconds' worth, so delays do not add up over the rotation.
    const wait = this.nextStartAt - Date.now();
    if (wait >= MIN_PACING_SLEEP_MS && (await condition(() => this.state.cancelled || this.state.paused, wait))) return undefined;
    this.nextStartAt = Math.max(this.nextStartAt + size * this.intervalMs, Date.now() - Math.max(this.intervalMs, MAX_CATCH_UP_MS));
    return queue.splice(0, size);
  }

  private async launch(userIds: string[]): Promise<void> {
    const key = this.state.key!;
    this.activitiesInFlight += 1;
    this.usersInFlight += userIds.length;
    this.activitiesThisRun += 1;
    try {
      const result = await rewrapActivities.rewrapUsers({
        rotationId: this.input.rotationId,
        userIds,
        targetVersion: key.targetVersion,
        rotatedAtMs: Date.parse(key.rotatedAt),
      });
      this.absorb(result);
    } catch (error) {
      // Only a bug ends the activity for good (per-user problems are results): count its users as failed.
      const reason = failureReason(error);
      this.state.counts.usersFailed += userIds.length;
      for (const userId of userIds) this.recordFailure({ userId, kind: 'user', reason: `the rewrap activity failed: ${reason}` });
    } finally {
      this.activitiesInFlight -= 1;
      this.usersInFlight -= userIds.length;
      const now = Date.now();
      for (let i = 0; i < userIds.length; i += 1) this.visitTimes.push(now);
      while (this.visitTimes.length && this.visitTimes[0]! < now - 60_000) this.visitTimes.shift();
    }
  }

  private absorb(result: RewrapUsersResult): void {
    addRotationCounts(this.state.counts, result.counts);
    for (const failure of result.failures) this.recordFailure(failure);
    for (const userId of result.deferred) if (!this.state.deferred.includes(userId)) this.state.deferred.push(userId);
  }

  private recordFailure(failure: RotationFailure): void {
    this.state.failures.push(failure);
    if (this.state.failures.length > MAX_RECENT_ROTATION_FAILURES) this.state.failures.shift();
  }

  private failureCount(): number {
    const { counts } = this.state;
    return counts.usersFailed + counts.clientCiphertexts.failed + counts.custodianShares.failed;
  }

  /** Step 3, only when asked and when nothing stands in the way: raise min_decryption_version. */
  private async maybeRaiseMinDecryptionVersion(): Promise<MinDecryptionVersionOutcome> {
    const key = this.state.key;
    const outcome: MinDecryptionVersionOutcome = {
      requested: this.input.raiseMinDecryptionVersion,
      raised: false,
      ...(key ? { minDecryptionVersion: key.minDecryptionVersionBefore } : {}),
    };
    if (!this.input.raiseMinDecryptionVersion || !key) return outcome;
    if (this.state.cancelled) return { ...outcome, reason: 'the rotation was cancelled before every ciphertext was rewrapped' };
    const failures = this.failureCount();
    if (failures > 0 || this.state.deferred.length > 0) {
      return {
        ...outcome,
        reason: `${failures} failure(s) and ${this.state.deferred.length} deferred user(s): every ciphertext must be verified on version ${key.targetVersion} first`,
      };
    }
    try {
      this.phase = 'CHECKING';
      // Before the raise, a census of a store that cannot be listed, and the raise only on the
      // check's receipt (a census, check or rewrap result completed from outside never raises).
      // (Over the PostgreSQL store the census answers at once: the check counts the store's rows itself.)
      if (!this.censusSource) return { ...outcome, reason: 'this rotation started before censuses were kept and its list source is gone: run keys rotate --raise-min-version again' };
      const census: RotationCensus = await censusActivities.censusBeforeRaise({
        rotationId: this.input.rotationId,
        targetVersion: key.targetVersion,
        source: this.censusSource,
        ...(this.input.pageSize ? { pageSize: this.input.pageSize } : {}),
      });
      if (census.stale > 0 || census.unreadable > 0) {
        return { ...outcome, reason: `the census found ${census.stale} ciphertext(s) below version ${key.targetVersion} and ${census.unreadable} it could not read (${census.sample.join('; ')})` };
      }
      const check = await finishActivities.checkBeforeRaise({
        rotationId: this.input.rotationId,
        targetVersion: key.targetVersion,
        rotatedAtMs: Date.parse(key.rotatedAt),
        everyUser: this.input.everyUser === true,
        ...(this.input.backupTaskQueue ? { backupTaskQueue: this.input.backupTaskQueue } : {}),
        census: { usersCounted: census.usersCounted, ciphertextsCounted: census.ciphertextsCounted, receipt: census.receipt },
      });
      if (check.reasons.length > 0) return { ...outcome, reason: check.reasons.join('; ') };
      this.phase = 'RAISING_MIN_DECRYPTION_VERSION';
      const raised = await finishActivities.raiseMinDecryptionVersion({
        rotationId: this.input.rotationId,
        version: key.targetVersion,
        check: check.receipt,
      });
      log.info('key rotation: min_decryption_version raised', { rotationId: this.input.rotationId, minDecryptionVersion: raised.minDecryptionVersion });
      return { requested: true, raised: true, minDecryptionVersion: raised.minDecryptionVersion };
    } catch (error) {
      // The pass is done and verified: report why the raise did not happen rather than fail the rotation.
      return { ...outcome, reason: `the raise failed: ${failureReason(error)}` };
    }
  }

  private shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    return (
      this.activitiesThisRun >= (this.input.activitiesPerRun ?? DEFAULT_ACTIVITIES_PER_RUN) ||
      info.continueAsNewSuggested ||
      info.historyLength >= (this.input.maxHistoryEventsPerRun ?? MAX_HISTORY_EVENTS_PER_RUN)
    );
  }

  /** Drains the activities in flight, then hands the counts, the cursor and the bounded lists to a new run. */
  private async continueAsNewNow(): Promise<void> {
    await condition(() => this.activitiesInFlight === 0);
    // A cancel that arrived while draining ends the rotation in this run.
    if (this.state.cancelled) return;
    await condition(allHandlersFinished);
    await makeContinueAsNewFunc<typeof rotateKeys>(UPGRADE_ON_CONTINUE_AS_NEW)({
      ...this.input,
      ...(this.input.source.kind === 'list' ? { source: { kind: 'list', userIds: this.list } } : {}),
      ...(this.censusSource && this.input.raiseMinDecryptionVersion ? { censusSource: this.censusSource } : {}),
      carried: { ...this.state, key: this.state.key!, runs: this.state.runs + 1 },
    });
  }

  private async refill(): Promise<void> {
    const state = this.state;
    if (state.pending.length > 0 || state.sourceExhausted) return;
    let page: string[];
    const pageSize = this.input.pageSize ?? DEFAULT_PAGE_SIZE;
    if (this.input.source.kind === 'list') {
      page = this.list.splice(0, pageSize);
      state.sourceExhausted = this.list.length === 0;
    } else {
      const url = this.input.source.url;
      const fetch = () => sourceActivities.fetchUserPage({ url, cursor: state.cursor, limit: pageSize });
      const fetched = await fetchPageOrPause(fetch, state.cursor, (reason) => {
        state.paused = true;
        state.sourceRefused = reason;
        log.warn('key rotation paused: its user source refused a page', { rotationId: this.input.rotationId, reason });
      });
      if (!fetched) return;
      page = fetched.userIds;
      if (fetched.nextCursor) state.cursor = fetched.nextCursor;
      state.sourceExhausted = !fetched.nextCursor;
    }
    const queued = new Set([...state.pending, ...state.deferred]);
    state.pending.push(...page.filter((id) => !queued.has(id) && (queued.add(id), true)));
  }

  private progress(): RotationProgress {
    const { counts, key } = this.state;
    const now = Date.now();
    const lastMinute = this.visitTimes.filter((at) => at >= now - 60_000).length;
    const elapsedMin = Math.min(1, (now - Date.parse(this.state.startedAt)) / 60_000);
    const ratePerMinute = elapsedMin > 0 ? lastMinute / elapsedMin : 0;
    const total = this.state.listTotal ?? (this.state.sourceExhausted ? counts.usersVisited + counts.usersFailed + this.state.pending.length + this.state.deferred.length + this.usersInFlight : undefined);
    const done = counts.usersVisited + counts.usersFailed;
    const status: RotationStatus = this.state.cancelled ? 'CANCELLING' : this.state.paused ? 'PAUSED' : this.phase;
    return {
      rotationId: this.input.rotationId,
      status,
      ...(key ? { key } : {}),
      ...(total !== undefined ? { total } : {}),
      counts: JSON.parse(JSON.stringify(counts)) as typeof counts,
      inFlight: this.usersInFlight,
      deferredUsers: this.state.deferred.slice(0, DEFERRED_SHOWN),
      deferredCount: this.state.deferred.length,
      ratePerMinute: Math.round(ratePerMinute * 10) / 10,
      ...(total !== undefined && ratePerMinute > 0 ? { etaSeconds: Math.max(0, Math.round(((total - done) / ratePerMinute) * 60)) } : {}),
      usersPerMinute: this.input.usersPerMinute,
      concurrency: this.input.concurrency,
      raiseMinDecryptionVersion: this.input.raiseMinDecryptionVersion,
      runs: this.state.runs,
      startedAt: this.state.startedAt,
      ...(this.state.sourceRefused ? { sourceRefused: this.state.sourceRefused } : {}),
    };
  }
}

function failureReason(error: unknown): string {
  if (error instanceof ActivityFailure && error.cause) {
    const cause = error.cause;
    return cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}
