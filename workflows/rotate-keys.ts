import { ActivityFailure, allHandlersFinished, ApplicationFailure, condition, log, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { KeyRotationActivities } from '../activities/rotation/key-rotation-activities';
import type { RotationCensusActivities } from '../activities/rotation/rotation-census';
import { AFTER_VERIFIED_PASS_OPTIONS, BEFORE_KEY_CHANGE_OPTIONS, CENSUS_OPTIONS, CHECKPOINTED_OPTIONS } from '../contracts/fleet-timeouts';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import {
  continueAsNewUpgrading,
  failureReason,
  FleetControl,
  listTooLong,
  Pacer,
  pushBounded,
  RateWindow,
  shouldContinueAsNew,
  UserSource,
} from './fleet-run';
import { recordAct } from './audit-trail';
import { expectedAction, refusal, startVerifier } from './operator-verification';
import { requireActionFor } from '../domain/operator-action';
import {
  addRotationCounts,
  ROTATION_REQUEST_UNVERIFIED_ERROR_TYPE,
  ROTATION_SIGNED_START_PATCH,
  rotationStartKind,
  cancelRotationUpdate,
  emptyRotationCounts,
  MAX_DEFERRED_USERS,
  MAX_RECENT_ROTATION_FAILURES,
  pauseRotationUpdate,
  resumeRotationUpdate,
  rotationFailuresQuery,
  rotationProgressQuery,
  type MinDecryptionVersionOutcome,
  type RewrapUsersResult,
  type RotateKeysInput,
  type RotationCarriedState,
  type RotationFailure,
  type RotationKeyState,
  type RotationProgress,
  type RotationReport,
  type RotationStatus,
} from '../contracts/rotate-keys-api';

/** The key step, before anything changed. */
const keyActivities = proxyActivities<KeyRotationActivities>(BEFORE_KEY_CHANGE_OPTIONS);
/** The check and the raise, after the whole verified pass. */
const finishActivities = proxyActivities<KeyRotationActivities>(AFTER_VERIFIED_PASS_OPTIONS);
/** The rewrap of a few users, checkpointed in its heartbeats. */
const rewrapActivities = proxyActivities<KeyRotationActivities>(CHECKPOINTED_OPTIONS);
/** The census before the raise over a store that cannot be listed: every stored ciphertext of the source read again. */
const censusActivities = proxyActivities<RotationCensusActivities>(CENSUS_OPTIONS);

const DEFAULT_USERS_PER_ACTIVITY = 10;
const DEFAULT_PAGE_SIZE = 200;
/** After this many rewrap activities in one run, drain and continue as new to keep history bounded. */
const DEFAULT_ACTIVITIES_PER_RUN = 300;
/** Users deferred (their pre-rotation backup was running) are looked at again after 30 s, then less often, up to every 5 min. */
const DEFERRED_RECHECK_FIRST_MS = 30_000;
const DEFERRED_RECHECK_MAX_MS = 5 * 60_000;
/** How many deferred users the progress query names. */
const DEFERRED_SHOWN = 20;

/**
 * Rotates the Transit key and rewraps every stored ciphertext to the new version: the client
 * backup shares in the ciphertext store, every copy when CIPHERTEXT_STORES names several (for
 * every pair Portal lists for each user of the source)
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
  return rotation.control.shielded('rotation', () => rotation.run());
}

function inputProblem(input: RotateKeysInput): string | undefined {
  if (typeof input?.rotationId !== 'string' || input.rotationId.length === 0) return 'rotationId is missing';
  if (!input.source || (input.source.kind !== 'list' && input.source.kind !== 'http')) return 'source must be a list or an http source';
  const tooLong = listTooLong(input.source, input.carried);
  if (tooLong) return tooLong;
  if (!(input.usersPerMinute > 0)) return 'usersPerMinute must be positive';
  if (!(input.concurrency >= 1)) return 'concurrency must be at least 1';
  if (input.usersPerActivity !== undefined && !(input.usersPerActivity >= 1)) return 'usersPerActivity must be at least 1';
  return undefined;
}

/** One run (between continue-as-new) of a rotation. */
class RotationRun {
  private readonly state: Omit<RotationCarriedState, 'key'> & Partial<Pick<RotationCarriedState, 'key'>>;
  readonly control: FleetControl;
  private readonly source: UserSource;
  private readonly pacer: Pacer;
  private readonly usersPerActivity: number;
  private readonly censusSource: RotateKeysInput['source'] | undefined;
  private phase: RotationStatus = 'ROTATING_KEY';
  private activitiesInFlight = 0;
  private usersInFlight = 0;
  private activitiesThisRun = 0;
  private readonly visits = new RateWindow();

  constructor(private readonly input: RotateKeysInput) {
    this.usersPerActivity = input.usersPerActivity ?? DEFAULT_USERS_PER_ACTIVITY;
    this.state = input.carried ?? initialState(input);
    this.control = new FleetControl(this.state);
    this.source = new UserSource(input.source, input.pageSize ?? DEFAULT_PAGE_SIZE, this.state, this.control, 'key rotation');
    this.pacer = new Pacer(input.usersPerMinute);
    // The whole source, for the census: a list source travels on with only the ids not taken yet.
    // Only a continued run takes it from its input: a first run's is its own source (a starter cannot narrow the census).
    this.censusSource = !input.carried ? input.source : (input.censusSource ?? (input.source.kind === 'list' ? undefined : input.source));
    if (this.state.key) this.phase = 'REWRAPPING';
    setHandler(rotationProgressQuery, () => this.progress());
    setHandler(rotationFailuresQuery, () => this.state.failures);
    this.control.handleUpdates({ pause: pauseRotationUpdate, resume: resumeRotationUpdate, cancel: cancelRotationUpdate }, () => this.progress(), 'rotation');
  }

  async run(): Promise<RotationReport> {
    if (!this.input.carried && patched(ROTATION_SIGNED_START_PATCH)) this.state.startedBy = await this.verifiedStarter();
    if (!this.state.key && !this.control.cancelled) await this.rotateKey();
    if (this.state.key) {
      await this.rewrapPass();
      await this.revisitDeferred(0);
    }
    await condition(() => this.activitiesInFlight === 0);
    const minDecryptionVersion = await this.maybeRaiseMinDecryptionVersion();
    const status = this.control.cancelled ? 'CANCELLED' : this.failureCount() > 0 || this.state.deferred.length > 0 ? 'COMPLETED_WITH_FAILURES' : 'COMPLETED';
    await recordAct('rotation.finished', { details: { rotationId: this.input.rotationId, status, usersVisited: this.state.counts.usersVisited, failures: this.failureCount(), raised: minDecryptionVersion.raised } });
    await condition(allHandlersFinished);
    const failuresOmitted = this.failureCount() - this.state.failures.length;
    const finishedAt = Date.now();
    return {
      ...this.progress(),
      status,
      minDecryptionVersion,
      failures: this.state.failures,
      ...(failuresOmitted > 0 ? { failuresOmitted } : {}),
      finishedAt: new Date(finishedAt).toISOString(),
      durationMs: finishedAt - Date.parse(this.state.startedAt),
    };
  }

  /**
   * Before anything changes: the approver who signed this start (and, when asked, the raise), or the
   * rotation ends with RotationRequestUnverified saying why (nothing was read or changed).
   */
  private async verifiedStarter(): Promise<string> {
    const expected = expectedAction(rotationStartKind(this.input.raiseMinDecryptionVersion), undefined, { start: true });
    try {
      requireActionFor(this.input.request, expected);
      // A Vault outage while the start is checked is waited out (up to an hour), as a recovery's request is.
      return (await startVerifier.verifyOperatorAction({ action: this.input.request!, expected, mustBeApprover: true })).operator;
    } catch (error) {
      const how = 'an approver (RECOVERY_APPROVERS) starts it with `backup keys rotate` (OPERATOR_NAME and their own VAULT_TOKEN)';
      const reason = error instanceof ActivityFailure ? refusal(error).message : (error as Error).message;
      throw ApplicationFailure.nonRetryable(`key rotation ${this.input.rotationId} has no verified approver: ${reason}; ${how}`, ROTATION_REQUEST_UNVERIFIED_ERROR_TYPE);
    }
  }

  /** Step 1, once per rotation: the versions before, then a new one unless the key is past them already. */
  private async rotateKey(): Promise<void> {
    const { rotationId } = this.input;
    const actor = this.state.startedBy;
    await recordAct('rotation.started', { actor, details: { rotationId, rotate: this.input.rotate !== false, raiseMinDecryptionVersion: this.input.raiseMinDecryptionVersion } });
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
    const { keyName, fromVersion } = this.state.key;
    await recordAct('rotation.key_rotated', { actor, details: { rotationId, keyName, fromVersion, targetVersion, rotatedByThisRun } });
    log.info('key rotation: rewrapping to the new key version', { rotationId, ...this.state.key, store: before.storeKind });
  }

  /** Step 2: every user of the source, in paced rewrap activities, a few users each. */
  private async rewrapPass(): Promise<void> {
    while (!this.control.cancelled) {
      if (this.shouldContinueAsNew()) await this.continueAsNewNow();
      if (this.state.deferred.length >= MAX_DEFERRED_USERS) {
        // Too many users wait for their backups: see to them before taking more.
        await this.revisitDeferred(MAX_DEFERRED_USERS / 2);
        continue;
      }
      // Paused (by an operator, or by its source: resume asks for the refused page again).
      await condition(() => !this.control.paused || this.control.cancelled);
      if (this.control.cancelled) break;
      await this.refill();
      if (this.state.pending.length === 0) {
        if (this.source.exhausted) break;
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
    while (this.state.deferred.length > until && !this.control.cancelled) {
      await condition(() => this.activitiesInFlight === 0);
      if (this.shouldContinueAsNew()) await this.continueAsNewNow();
      this.phase = 'WAITING_FOR_BACKUPS';
      if (await condition(() => this.control.cancelled, waitMs)) break;
      waitMs = Math.min(waitMs * 2, this.input.deferredRecheckMaxMs ?? DEFERRED_RECHECK_MAX_MS);
      const users = this.state.deferred.splice(0);
      this.phase = 'REWRAPPING';
      while (users.length > 0 && !this.control.cancelled) {
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
    const { control } = this;
    await condition(() => (this.activitiesInFlight < this.input.concurrency && !control.paused) || control.cancelled);
    if (control.cancelled) return undefined;
    const size = Math.min(this.usersPerActivity, queue.length);
    if (!(await this.pacer.slot(size, () => control.cancelled || control.paused))) return undefined;
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
      this.visits.record(userIds.length);
    }
  }

  private absorb(result: RewrapUsersResult): void {
    addRotationCounts(this.state.counts, result.counts);
    for (const failure of result.failures) this.recordFailure(failure);
    for (const userId of result.deferred) if (!this.state.deferred.includes(userId)) this.state.deferred.push(userId);
  }

  private recordFailure(failure: RotationFailure): void {
    pushBounded(this.state.failures, failure, MAX_RECENT_ROTATION_FAILURES);
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
    const blocker = this.raiseBlocker(key);
    if (blocker) return { ...outcome, reason: blocker };
    try {
      const refused = await this.censusAndCheck(key);
      if (typeof refused === 'string') return { ...outcome, reason: refused };
      this.phase = 'RAISING_MIN_DECRYPTION_VERSION';
      const raised = await finishActivities.raiseMinDecryptionVersion({ rotationId: this.input.rotationId, version: key.targetVersion, check: refused.receipt });
      log.info('key rotation: min_decryption_version raised', { rotationId: this.input.rotationId, minDecryptionVersion: raised.minDecryptionVersion });
      await recordAct('rotation.min_version_raised', { actor: this.state.startedBy, details: { rotationId: this.input.rotationId, keyName: key.keyName, minDecryptionVersion: raised.minDecryptionVersion } });
      return { requested: true, raised: true, minDecryptionVersion: raised.minDecryptionVersion };
    } catch (error) {
      // The pass is done and verified: report why the raise did not happen rather than fail the rotation.
      return { ...outcome, reason: `the raise failed: ${failureReason(error)}` };
    }
  }

  /** Why the pass does not allow a raise, if it does not. */
  private raiseBlocker(key: RotationKeyState): string | undefined {
    if (this.control.cancelled) return 'the rotation was cancelled before every ciphertext was rewrapped';
    const failures = this.failureCount();
    if (failures > 0 || this.state.deferred.length > 0) {
      return `${failures} failure(s) and ${this.state.deferred.length} deferred user(s): every ciphertext must be verified on version ${key.targetVersion} first`;
    }
    if (!this.censusSource) return 'this rotation started before censuses were kept and its list source is gone: run keys rotate --raise-min-version again';
    return undefined;
  }

  /**
   * Before the raise, a census of a store that cannot be listed, then the check: its receipt, or why
   * not. The raise acts only on the check's receipt (a census, check or rewrap result completed from
   * outside never raises). Over the PostgreSQL store the census answers at once: the check counts
   * the store's rows itself.
   */
  private async censusAndCheck(key: RotationKeyState): Promise<{ receipt: unknown } | string> {
    this.phase = 'CHECKING';
    const { rotationId } = this.input;
    const pageSize = this.input.pageSize ? { pageSize: this.input.pageSize } : {};
    const census = await censusActivities.censusBeforeRaise({ rotationId, targetVersion: key.targetVersion, source: this.censusSource!, ...pageSize });
    // copiesMissing: absent from censuses of one store (and from every history before copies), so their branch is unchanged.
    const copiesMissing = census.copiesMissing ?? 0;
    if (census.stale > 0 || census.unreadable > 0 || copiesMissing > 0) {
      const missing = copiesMissing > 0 ? `, ${copiesMissing} copy(ies) missing from a store that keeps copies (backup copies repair, then keys rotate --no-rotate --raise-min-version)` : '';
      return `the census found ${census.stale} ciphertext(s) below version ${key.targetVersion} and ${census.unreadable} it could not read${missing} (${census.sample.join('; ')})`;
    }
    const check = await finishActivities.checkBeforeRaise({
      rotationId,
      targetVersion: key.targetVersion,
      rotatedAtMs: Date.parse(key.rotatedAt),
      everyUser: this.input.everyUser === true,
      ...(this.input.backupTaskQueue ? { backupTaskQueue: this.input.backupTaskQueue } : {}),
      census: { usersCounted: census.usersCounted, ciphertextsCounted: census.ciphertextsCounted, receipt: census.receipt },
    });
    return check.reasons.length > 0 ? check.reasons.join('; ') : { receipt: check.receipt };
  }

  private shouldContinueAsNew(): boolean {
    return shouldContinueAsNew(this.activitiesThisRun, this.input.activitiesPerRun ?? DEFAULT_ACTIVITIES_PER_RUN, this.input.maxHistoryEventsPerRun);
  }

  /** Drains the activities in flight, then hands the counts, the cursor and the bounded lists to a new run. */
  private async continueAsNewNow(): Promise<void> {
    await condition(() => this.activitiesInFlight === 0);
    // A cancel that arrived while draining ends the rotation in this run.
    if (this.control.cancelled) return;
    await continueAsNewUpgrading<typeof rotateKeys>({
      ...this.input,
      ...this.source.nextRunSource(),
      ...(this.censusSource && this.input.raiseMinDecryptionVersion ? { censusSource: this.censusSource } : {}),
      carried: { ...this.state, key: this.state.key!, runs: this.state.runs + 1 },
    });
  }

  private async refill(): Promise<void> {
    const state = this.state;
    if (state.pending.length > 0 || this.source.exhausted) return;
    const page = await this.source.nextPage([...state.pending, ...state.deferred]);
    if (!page) return;
    // An id that is not a user id is reported as a failed user, never rewrapped.
    state.counts.usersFailed += page.invalid.length;
    for (const { userId, reason } of page.invalid) this.recordFailure({ userId, kind: 'user', reason });
    state.pending.push(...page.userIds);
  }

  private progress(): RotationProgress {
    const { counts, key } = this.state;
    const total = this.state.listTotal ?? (this.state.sourceExhausted ? counts.usersVisited + counts.usersFailed + this.state.pending.length + this.state.deferred.length + this.usersInFlight : undefined);
    const done = counts.usersVisited + counts.usersFailed;
    const status: RotationStatus = this.control.cancelled ? 'CANCELLING' : this.control.paused ? 'PAUSED' : this.phase;
    return {
      rotationId: this.input.rotationId,
      status,
      ...(key ? { key } : {}),
      ...(total !== undefined ? { total } : {}),
      counts: JSON.parse(JSON.stringify(counts)) as typeof counts,
      inFlight: this.usersInFlight,
      deferredUsers: this.state.deferred.slice(0, DEFERRED_SHOWN),
      deferredCount: this.state.deferred.length,
      ...this.visits.report(this.state.startedAt, total, done),
      usersPerMinute: this.input.usersPerMinute,
      concurrency: this.input.concurrency,
      raiseMinDecryptionVersion: this.input.raiseMinDecryptionVersion,
      runs: this.state.runs,
      startedAt: this.state.startedAt,
      ...(this.state.sourceRefused ? { sourceRefused: this.state.sourceRefused } : {}),
    };
  }
}

function initialState(input: RotateKeysInput): Omit<RotationCarriedState, 'key'> {
  return {
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
}
