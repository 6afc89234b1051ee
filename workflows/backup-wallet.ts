import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { BackupActivities, EncryptSharesResult, MpcBackupResult } from '../activities';
import type {
  BackupPairIds,
  BackupShares,
  BackupProgress,
  BackupResult,
  BackupStatus,
  BackupStep,
  RecordedError,
} from '../domain/backup-types';
import { BACKUP_STEPS } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import {
  ABANDONED_ERROR_TYPE,
  abandonUpdate,
  BackupStatusKey,
  BackupStepKey,
  progressQuery,
  retryUpdate,
  type BackupWalletInput,
  type RetryRequest,
} from '../contracts/backup-wallet-api';
import { childParkedSignal } from '../contracts/batch-backup-api';
import { requireVerifiedReceipt } from './receipt-checks';
import { pairClaims } from '../domain/step-receipt';
import { countBackupFinished, countBackupParked, countBackupStarted, recordStepDuration } from './workflow-metrics';
import { AFTER_NO_RETURN_RETRY, BEFORE_NO_RETURN_RETRY, GIVE_UP_AFTER, NOTE_ONLY_GIVE_UP_AFTER, NOTE_ONLY_RETRY, STEP_OPTIONS } from '../contracts/step-timeouts';
import {
  activityErrorMessage,
  recordActivityError,
  redoStepOfFailure,
  requireReceipt,
  StepResultRefused,
  userIdFromInput,
  type OperatorDecision,
} from './run-helpers';

/** Step 1 may give up: before Portal has handed out shares, failing loses nothing. */
const beforeShares = proxyActivities<BackupActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: GIVE_UP_AFTER, retry: BEFORE_NO_RETURN_RETRY });

/** Steps 2-4: once shares exist the workflow never fails on its own; permanent errors park it. */
const afterShares = proxyActivities<BackupActivities>({ ...STEP_OPTIONS, retry: AFTER_NO_RETURN_RETRY });

/** A short look at Portal after step 1 failed for good; its failure only leaves a note. */
const afterStep1Failure = proxyActivities<BackupActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: NOTE_ONLY_GIVE_UP_AFTER, retry: NOTE_ONLY_RETRY });

/** Step 1's result; runs started before shares were sealed recorded plaintext `shares` instead. */
type Step1Result = Partial<MpcBackupResult> & { shares?: BackupShares; orphanedPairIds: string[]; orphanScanError?: string };

/**
 * Backs up one user's wallet: MPC backup → encrypt → store and verify → mark. A failure in a later
 * step never re-runs an earlier one; after step 1 a permanent error parks the run as
 * NEEDS_ATTENTION until an operator sends `retry` or `abandon`.
 */
export async function backupWallet(input: BackupWalletInput): Promise<BackupResult> {
  const userId = userIdFromInput(input);

  const startedAt = Date.now();
  const stepDurationsMs: Partial<Record<BackupStep, number>> = {};
  const progress: BackupProgress = {
    userId,
    status: 'RUNNING',
    step: 'MPC_BACKUP',
    attempts: {},
    orphanedPairIds: [],
    startedAt: new Date(startedAt).toISOString(),
  };
  let decision: OperatorDecision | undefined;

  // Each upsert is a history event, a visibility write and a billable action: skip the ones that
  // change nothing an operator filters on (a run started by our client or batch already carries
  // RUNNING / MPC_BACKUP).
  const initial = workflowInfo().typedSearchAttributes;
  let published = { status: initial.get(BackupStatusKey), step: initial.get(BackupStepKey) };
  const publish = (status: BackupStatus, step: BackupProgress['step']) => {
    if (status !== progress.status) countTransition(status, step, progress);
    progress.status = status;
    progress.step = step;
    // BackupStep changes only with BackupStatus: operators filter on the status and on where a
    // parked or failed run stopped; a running run's step is in the progress query.
    if (published.status === status) return;
    published = { status, step };
    upsertSearchAttributes([
      { key: BackupStatusKey, value: status },
      { key: BackupStepKey, value: step },
    ]);
  };

  setHandler(progressQuery, () => progress);
  setHandler(
    retryUpdate,
    async (_request: RetryRequest) => {
      decision = { kind: 'retry' };
      await condition(() => progress.status !== 'NEEDS_ATTENTION');
      return progress;
    },
    {
      validator: (request: RetryRequest) => {
        if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
        requireParked(progress, decision);
      },
    },
  );
  setHandler(
    abandonUpdate,
    async (request) => {
      decision = { kind: 'abandon', reason: request.reason.trim() };
      await condition(() => progress.status !== 'NEEDS_ATTENTION');
      return progress;
    },
    {
      validator: (request) => {
        if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
        requireParked(progress, decision);
        if (typeof request?.reason !== 'string' || request.reason.trim().length === 0 || request.reason.length > 1000) {
          throw new Error('abandon needs a reason of 1 to 1000 characters');
        }
      },
    },
  );

  const timed = async <T>(step: BackupStep, body: () => Promise<T>): Promise<T> => {
    const stepStart = Date.now();
    let outcome: 'ok' | 'error' = 'error';
    try {
      const result = await body();
      outcome = 'ok';
      return result;
    } finally {
      stepDurationsMs[step] = (stepDurationsMs[step] ?? 0) + (Date.now() - stepStart);
      recordStepDuration(step, outcome, Date.now() - stepStart);
    }
  };

  /** Parks at `step` with `error` until an operator decides: returns on retry, ends the run on abandon. */
  const parkUntilDecided = async (step: BackupStep, error: RecordedError): Promise<void> => {
    progress.lastError = error;
    decision = undefined;
    publish('NEEDS_ATTENTION', step);
    await tellParentWeParked(userId, progress.lastError);
    try {
      await condition(() => decision !== undefined);
    } catch (waitError) {
      if (isCancellation(waitError)) publish('CANCELLED', step);
      throw waitError;
    }
    const chosen = decision as OperatorDecision | undefined;
    if (chosen?.kind === 'abandon') {
      publish('ABANDONED', step);
      // Let the abandon update return its answer before the run closes.
      await condition(allHandlersFinished);
      throw ApplicationFailure.nonRetryable(`backup abandoned by an operator at step ${step}: ${chosen.reason}`, ABANDONED_ERROR_TYPE);
    }
  };

  /**
   * One call of a step after shares exist: its value, or its failure as recorded (with the step a
   * refused receipt says to run again). A cancellation is published and rethrown.
   */
  const attempt = async <T>(step: BackupStep, call: () => Promise<T>): Promise<{ value: T } | { failure: RecordedError; redo?: BackupStep }> => {
    publish('RUNNING', step);
    progress.attempts[step] = (progress.attempts[step] ?? 0) + 1;
    try {
      return { value: await call() };
    } catch (error) {
      if (isCancellation(error)) {
        // An operator cancelled the run (Web UI or API): say so rather than parking.
        publish('CANCELLED', step);
        throw error;
      }
      if (error instanceof StepResultRefused) return { failure: { ...error.recorded, step } };
      if (!(error instanceof ActivityFailure)) throw error;
      const redo = redoStepOfFailure(error);
      return { failure: recordActivityError(step, error), ...(isBackupStep(redo) ? { redo } : {}) };
    }
  };

  /**
   * Runs a step after shares exist; on a permanent failure parks until an operator decides. When
   * the failure was a refused receipt of an earlier step, the operator's retry returns that step,
   * to run it again, rather than this one.
   */
  const parkableOrRedo = (step: BackupStep, call: () => Promise<void>): Promise<BackupStep | undefined> =>
    timed(step, async () => {
      for (;;) {
        const outcome = await attempt(step, call);
        if ('value' in outcome) return undefined;
        await parkUntilDecided(step, outcome.failure);
        if (outcome.redo !== undefined && outcome.redo !== step) return outcome.redo;
      }
    });

  /** Step 1 failed for good (or its result is not ours): name the pairs Portal made anyway, and fail the run. */
  const failStep1 = async (recorded: RecordedError, cause: ActivityFailure | undefined): Promise<never> => {
    progress.lastError = recorded;
    let orphans = '';
    // Attempts whose responses were lost may have made pairs at Portal: name them.
    try {
      progress.orphanedPairIds = await afterStep1Failure.findOrphanedPairs({ userId, sinceMs: step1ScheduledAt });
      if (progress.orphanedPairIds.length > 0) orphans = `; orphaned pairs left incomplete at Portal: ${progress.orphanedPairIds.join(', ')}`;
    } catch (scanError) {
      orphans = `; the orphaned-pair scan failed (${activityErrorMessage(scanError)})`;
    }
    publish('FAILED', 'MPC_BACKUP');
    throw ApplicationFailure.create({
      type: recorded.type,
      message: `backup of user ${userId} could not start: ${recorded.message}${orphans}`,
      nonRetryable: true,
      ...(cause ? { cause } : {}),
    });
  };

  countBackupStarted();
  // Step 1: a permanent error (unknown user, revoked key) fails the run before anything exists.
  publish('RUNNING', 'MPC_BACKUP');
  progress.attempts.MPC_BACKUP = 1;
  const step1ScheduledAt = Date.now();
  let backup: Step1Result;
  try {
    backup = await timed('MPC_BACKUP', () => beforeShares.mpcBackup({ userId }));
  } catch (error) {
    if (isCancellation(error)) {
      publish('CANCELLED', 'MPC_BACKUP');
      throw error;
    }
    if (!(error instanceof ActivityFailure)) throw error;
    return failStep1(recordActivityError('MPC_BACKUP', error), error);
  }
  if (!isStep1Result(backup)) {
    // Not a result of our step 1 (completed from outside, or undecodable): Portal may have made
    // pairs all the same, so it fails like a step 1 that failed, naming what it finds.
    return failStep1(
      { step: 'MPC_BACKUP', type: 'StepResultInvalidError', message: 'the MPC_BACKUP step\'s result is not one a worker makes', at: new Date(Date.now()).toISOString() },
      undefined,
    );
  }
  const pairIds = backup.pairIds ?? pairIdsOf(backup.shares!);
  progress.pairIds = pairIds;
  progress.orphanedPairIds = backup.orphanedPairIds;
  const sharesForStep2 = backup.sealedShares ? { sealedShares: backup.sealedShares } : { shares: backup.shares! };

  // Each step's result goes on only with its receipt; MARK checks STORE's (and CHECK_CUSTODIAN's).
  const steps: BackupStep[] = ['ENCRYPT', 'STORE', ...(backup.selfManaged ? (['CHECK_CUSTODIAN'] as const) : []), 'MARK'];
  let encrypted: EncryptSharesResult | undefined;
  const results: { store?: unknown; custodian?: unknown } = {};
  const run = async (step: BackupStep): Promise<void> => {
    if (step === 'ENCRYPT') encrypted = requireReceipt('ENCRYPT', userId, await afterShares.encryptShares({ userId, ...sharesForStep2 }));
    else if (step === 'STORE') {
      const firstCall = progress.attempts.STORE === 1;
      results.store = requireReceipt('STORE', userId, await afterShares.storeCiphertexts({ userId, encrypted: encrypted!, firstCall, requireReceipts: true })).receipt;
    } else if (step === 'CHECK_CUSTODIAN') results.custodian = requireReceipt('CHECK_CUSTODIAN', userId, await afterShares.checkCustodianShares({ userId, pairIds })).receipt;
    else {
      const marked = await afterShares.markPairsStored({ userId, pairIds, receipts: { store: results.store, custodian: results.custodian }, requireReceipts: true });
      await requireVerifiedReceipt('MARK', pairClaims(userId, pairIds), marked);
    }
  };
  for (let at = 0; at < steps.length; ) {
    const redo = await parkableOrRedo(steps[at]!, () => run(steps[at]!));
    at = redo !== undefined && steps.includes(redo) ? steps.indexOf(redo) : at + 1;
  }

  publish('COMPLETED', 'DONE');
  await condition(allHandlersFinished);
  return {
    userId,
    status: 'COMPLETED',
    pairIds,
    orphanedPairIds: backup.orphanedPairIds,
    ...(backup.orphanScanError ? { orphanScanError: backup.orphanScanError } : {}),
    stepDurationsMs,
    startedAt: progress.startedAt,
    completedAt: new Date(Date.now()).toISOString(),
  };
}

/** Metrics of a status change (no command: see workflow-metrics.ts). `progress` still holds the previous status. */
function countTransition(status: BackupStatus, step: BackupProgress['step'], progress: BackupProgress): void {
  if (status === 'NEEDS_ATTENTION') countBackupParked(step, progress.lastError?.type);
  else if (status === 'COMPLETED') countBackupFinished('completed', step);
  else if (status === 'FAILED') countBackupFinished('failed', step);
  else if (status === 'ABANDONED') countBackupFinished('abandoned', step);
  else if (status === 'CANCELLED') countBackupFinished('cancelled', step);
}

/** A batch that started this backup frees its window slot when told the backup parked. */
async function tellParentWeParked(userId: string, error: RecordedError): Promise<void> {
  const parent = workflowInfo().parent;
  if (!parent) return;
  try {
    await getExternalWorkflowHandle(parent.workflowId).signal(childParkedSignal, {
      userId,
      reason: `parked at ${error.step}: ${error.type}: ${error.message}`,
    });
  } catch {
    // The batch has finished or was reset: nobody to tell; the search attribute still says it.
  }
}

/** Whether step 1's result has the shape a worker returns (the refusal marker, `null` or a stray object do not). */
function isStep1Result(result: Step1Result | null | undefined): boolean {
  if (typeof result !== 'object' || result === null || !Array.isArray(result.orphanedPairIds)) return false;
  const ids = result.pairIds ?? (result.shares ? pairIdsOf(result.shares) : undefined);
  return !!ids && CURVES.every((curve) => typeof ids[curve] === 'string' && ids[curve].length > 0) && (!!result.sealedShares || !!result.shares);
}

function isBackupStep(step: string | undefined): step is BackupStep {
  return step !== undefined && (BACKUP_STEPS as readonly string[]).includes(step);
}

function pairIdsOf(shares: BackupShares): BackupPairIds {
  return Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as BackupPairIds;
}

function requireParked(progress: BackupProgress, decision: OperatorDecision | undefined): void {
  if (progress.status !== 'NEEDS_ATTENTION') {
    throw new Error(`the backup of user ${progress.userId} is ${progress.status}, not NEEDS_ATTENTION`);
  }
  // Both updates can arrive in one workflow task, before the run leaves NEEDS_ATTENTION: the
  // first decision wins and the other is refused, never both accepted.
  if (decision !== undefined) {
    throw new Error(`the backup of user ${progress.userId} already has an operator decision (${decision.kind}) being carried out`);
  }
}

