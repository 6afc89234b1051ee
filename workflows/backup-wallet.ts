import { ActivityFailure, allHandlersFinished, ApplicationFailure, condition, getExternalWorkflowHandle, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BackupActivities, EncryptSharesResult, MpcBackupResult } from '../activities';
import type { BackupPairIds, BackupShares, BackupProgress, BackupResult, BackupStatus, BackupStep, RecordedError } from '../domain/backup-types';
import { BACKUP_STEPS } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import { ABANDONED_ERROR_TYPE, abandonUpdate, BACKUP_SIGNED_DECISIONS_PATCH, progressQuery, retryUpdate, type BackupWalletInput } from '../contracts/backup-wallet-api';
import { childParkedSignal } from '../contracts/batch-backup-api';
import { requireVerifiedReceipt } from './receipt-checks';
import { pairClaims } from '../domain/step-receipt';
import { countBackupFinished, countBackupParked, countBackupStarted, recordStepDuration } from './workflow-metrics';
import { AFTER_NO_RETURN_RETRY, BEFORE_NO_RETURN_RETRY, GIVE_UP_AFTER, NOTE_ONLY_GIVE_UP_AFTER, NOTE_ONLY_RETRY, STEP_OPTIONS } from '../contracts/step-timeouts';
import { activityErrorMessage, requireReceipt, userIdFromInput } from './run-helpers';
import { ParkableRun } from './parkable-run';
import { signedDecisions } from './operator-verification';

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
 * NEEDS_ATTENTION until an operator sends a signed `retry` or `abandon`.
 */
export async function backupWallet(input: BackupWalletInput): Promise<BackupResult> {
  const userId = userIdFromInput(input);
  const run = backupRun(userId);
  countBackupStarted();
  // Step 1: a permanent error (unknown user, revoked key) fails the run before anything exists.
  const step1ScheduledAt = Date.now();
  const step1 = await run.once('MPC_BACKUP', () => beforeShares.mpcBackup({ userId }));
  if (!('value' in step1)) return failStep1(run, step1.failure, step1.cause, step1ScheduledAt);
  const backup: Step1Result = step1.value;
  if (!isStep1Result(backup)) {
    // Not a result of our step 1 (completed from outside, or undecodable): Portal may have made
    // pairs all the same, so it fails like a step 1 that failed, naming what it finds.
    const refused = { step: 'MPC_BACKUP' as const, type: 'StepResultInvalidError', message: "the MPC_BACKUP step's result is not one a worker makes", at: new Date(Date.now()).toISOString() };
    return failStep1(run, refused, undefined, step1ScheduledAt);
  }
  const pairIds = backup.pairIds ?? pairIdsOf(backup.shares!);
  run.progress.pairIds = pairIds;
  run.progress.orphanedPairIds = backup.orphanedPairIds;
  // Each step's result goes on only with its receipt; MARK checks STORE's (and CHECK_CUSTODIAN's).
  const steps: BackupStep[] = ['ENCRYPT', 'STORE', ...(backup.selfManaged ? (['CHECK_CUSTODIAN'] as const) : []), 'MARK'];
  await run.parkableSteps(steps, stepsAfterShares(run, backup, pairIds));

  run.publish('COMPLETED', 'DONE');
  await condition(allHandlersFinished);
  return {
    userId,
    status: 'COMPLETED',
    pairIds,
    orphanedPairIds: backup.orphanedPairIds,
    ...(backup.orphanScanError ? { orphanScanError: backup.orphanScanError } : {}),
    stepDurationsMs: run.stepDurationsMs,
    startedAt: run.progress.startedAt,
    completedAt: new Date(Date.now()).toISOString(),
  };
}

type BackupRun = ParkableRun<BackupStep, BackupProgress>;

function backupRun(userId: string): BackupRun {
  return new ParkableRun<BackupStep, BackupProgress>({
    progress: { userId, status: 'RUNNING', step: 'MPC_BACKUP', attempts: {}, orphanedPairIds: [], startedAt: new Date(Date.now()).toISOString() },
    noun: 'backup',
    query: progressQuery,
    retryUpdate,
    abandonUpdate,
    // BackupStep changes only with BackupStatus: operators filter on the status and on where a
    // parked or failed run stopped; a running run's step is in the progress query.
    publishStepAlone: false,
    isRedoStep: isBackupStep,
    auditKinds: { retried: 'backup.retried', abandoned: 'backup.abandoned' },
    abandoned: (step, reason) => ApplicationFailure.nonRetryable(`backup abandoned by an operator at step ${step}: ${reason}`, ABANDONED_ERROR_TYPE),
    onStatusChange: countTransition,
    onStepTimed: recordStepDuration,
    onParked: (error) => tellParentWeParked(userId, error),
    // Any verified operator may retry or abandon a backup (docs/restore.md, "Roles and approvals").
    authorize: signedDecisions({
      kinds: { retry: 'backup-retry', abandon: 'backup-abandon' },
      userId,
      mustBeApprover: false,
      howToSign: 'sign it with `backup retry|abandon` (OPERATOR_NAME and your own VAULT_TOKEN) or send it through the HTTP API with a named token',
      applies: () => patched(BACKUP_SIGNED_DECISIONS_PATCH),
    }),
  });
}

/** The calls of the steps after shares exist; each result goes on only with its receipt. */
function stepsAfterShares(run: BackupRun, backup: Step1Result, pairIds: BackupPairIds): (step: BackupStep) => Promise<void> {
  const userId = run.progress.userId;
  const sharesForStep2 = backup.sealedShares ? { sealedShares: backup.sealedShares } : { shares: backup.shares! };
  let encrypted: EncryptSharesResult | undefined;
  const receipts: { store?: unknown; custodian?: unknown } = {};
  return async (step) => {
    if (step === 'ENCRYPT') encrypted = requireReceipt('ENCRYPT', userId, await afterShares.encryptShares({ userId, ...sharesForStep2 }));
    else if (step === 'STORE') {
      const firstCall = run.progress.attempts.STORE === 1;
      receipts.store = requireReceipt('STORE', userId, await afterShares.storeCiphertexts({ userId, encrypted: encrypted!, firstCall, requireReceipts: true })).receipt;
    } else if (step === 'CHECK_CUSTODIAN') receipts.custodian = requireReceipt('CHECK_CUSTODIAN', userId, await afterShares.checkCustodianShares({ userId, pairIds })).receipt;
    else {
      const marked = await afterShares.markPairsStored({ userId, pairIds, receipts, requireReceipts: true });
      await requireVerifiedReceipt('MARK', pairClaims(userId, pairIds), marked);
    }
  };
}

/** Step 1 failed for good (or its result is not ours): name the pairs Portal made anyway, and fail the run. */
async function failStep1(run: BackupRun, recorded: RecordedError, cause: ActivityFailure | undefined, sinceMs: number): Promise<never> {
  const { progress } = run;
  progress.lastError = recorded;
  let orphans = '';
  // Attempts whose responses were lost may have made pairs at Portal: name them.
  try {
    progress.orphanedPairIds = await afterStep1Failure.findOrphanedPairs({ userId: progress.userId, sinceMs });
    if (progress.orphanedPairIds.length > 0) orphans = `; orphaned pairs left incomplete at Portal: ${progress.orphanedPairIds.join(', ')}`;
  } catch (scanError) {
    // The scan failing for the reason step 1 did (an unknown user: no credentials to ask Portal with) says nothing new.
    const sameReason = activityErrorMessage(scanError) === recorded.message;
    orphans = sameReason ? '; no orphaned-pair scan (it could not look for the same reason)' : `; the orphaned-pair scan failed (${activityErrorMessage(scanError)})`;
  }
  run.publish('FAILED', 'MPC_BACKUP');
  throw ApplicationFailure.create({
    type: recorded.type,
    message: `backup of user ${progress.userId} could not start: ${recorded.message}${orphans}`,
    nonRetryable: true,
    ...(cause ? { cause } : {}),
  });
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
