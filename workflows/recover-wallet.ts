import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  startChild,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { RecoveryActivities } from '../activities/recovery/recovery-activities';
import type { RecoveryProgress, RecoveryResult, RecoveryStep } from '../domain/recovery-types';
import { backupWorkflowId } from '../domain/user-id';
import { initialBackupSearchAttributes } from '../contracts/backup-wallet-api';
import { INTERACTIVE_PRIORITY, RECOVERY_BACKUP_PRIORITY_PATCH } from '../contracts/run-priority';
import type { backupWallet } from './backup-wallet';
import {
  RECOVERY_ABANDONED_ERROR_TYPE,
  RECOVERY_APPROVAL_EXPIRED_ERROR_TYPE,
  RECOVERY_APPROVAL_PATCH,
  RECOVERY_APPROVALS_RECORDED_FIRST_PATCH,
  RECOVERY_FRESH_BACKUP_STEP,
  RECOVERY_REJECTED_ERROR_TYPE,
  RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE,
  recoveryAbandonUpdate,
  recoveryApproveUpdate,
  recoveryProgressQuery,
  recoveryRejectUpdate,
  recoveryRetryUpdate,
  type RecoverWalletInput,
} from '../contracts/recover-wallet-api';
import { AFTER_NO_RETURN_RETRY, BEFORE_NO_RETURN_RETRY, GIVE_UP_AFTER, NOTE_ONLY_GIVE_UP_AFTER, NOTE_ONLY_RETRY, STEP_OPTIONS } from '../contracts/step-timeouts';
import { activityErrorMessage, requireReceipt, userIdFromInput } from './run-helpers';
import { requireVerifiedReceipt } from './receipt-checks';
import { pairClaims } from '../domain/step-receipt';
import { ParkableRun, type OperatorAuthorization } from './parkable-run';
import { ApprovalGate, type ApprovalAct } from './approval-gate';
import { recordAct } from './audit-trail';
import { AUDIT_APPROVALS_PATCH, AUDIT_RECOVERY_CANCELLED_PATCH } from '../contracts/audit-events';

/** Steps before /v1/recover answered: nothing new exists yet, so a permanent error fails the run. */
const beforeRecover = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: GIVE_UP_AFTER, retry: BEFORE_NO_RETURN_RETRY });

/** After it: new signing shares exist; transient errors retry without end, permanent ones park. */
const afterRecover = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, retry: AFTER_NO_RETURN_RETRY });

/** A second look for orphaned signing pairs; its failure only leaves a note in the result. */
const noteOnly = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: NOTE_ONLY_GIVE_UP_AFTER, retry: NOTE_ONLY_RETRY });

/** A recovery's approvals: what they sign, fail with and record. */
const RECOVERY_APPROVAL: ApprovalAct<RecoveryProgress> = {
  noun: 'recovery',
  kinds: { request: 'recover-start', approve: 'recover-approve', reject: 'recover-reject', retry: 'recover-retry', abandon: 'recover-abandon' },
  approveUpdate: recoveryApproveUpdate,
  rejectUpdate: recoveryRejectUpdate,
  errorTypes: { rejected: RECOVERY_REJECTED_ERROR_TYPE, expired: RECOVERY_APPROVAL_EXPIRED_ERROR_TYPE, unverified: RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE },
  auditKinds: { approved: 'recovery.approved', rejected: 'recovery.rejected' },
  auditPatch: AUDIT_APPROVALS_PATCH,
  approvalsRecordedFirst: () => patched(RECOVERY_APPROVALS_RECORDED_FIRST_PATCH),
};

/**
 * Recovers one user's wallet from its newest completed backup: wait for the approvals of distinct
 * verified operators (workflows/recovery-approval.ts) → find it and read the ciphertexts →
 * decrypt and rebuild Portal's `/v1/backup` response (sealed to the workers) → `/v1/recover` →
 * hand the new signing shares to the company's backend → mark them STORED_CLIENT → (optionally) a
 * fresh backup. Once Portal has made the new signing shares, the run never fails on its own: a
 * permanent error parks it as NEEDS_ATTENTION until an operator sends `retry` or `abandon`.
 */
export async function recoverWallet(input: RecoverWalletInput): Promise<RecoveryResult> {
  const userId = userIdFromInput(input);
  // Runs recorded before approvals existed replay without the step (docs/changing-workflows.md).
  if (!patched(RECOVERY_APPROVAL_PATCH)) return recoverApproved(input, await started(recoveryRun(userId), input));
  let gate: ApprovalGate<RecoveryStep, RecoveryProgress> | undefined;
  const run = recoveryRun(userId, {
    validate: (kind, request) => gate!.authorization().validate(kind, request),
    verify: (kind, request) => gate!.authorization().verify(kind, request),
  });
  gate = new ApprovalGate(run, RECOVERY_APPROVAL);
  const approvedAtMs = await gate.awaitApproval(input);
  return recoverApproved(input, await started(run, input, gate.requester()), approvedAtMs);
}

/** The recovery's start in the audit trail: once approved (when approvals apply), by the verified requester. */
async function started(run: RecoveryRun, input: RecoverWalletInput, requester?: string): Promise<RecoveryRun> {
  await recordAct('recovery.started', { actor: requester, userId: run.progress.userId, details: { freshBackup: input.freshBackup !== false } });
  return run;
}

/** The recovery once approved (or, for runs recorded before approvals, from its start). */
async function recoverApproved(input: RecoverWalletInput, run: RecoveryRun, approvedAtMs?: number): Promise<RecoveryResult> {
  const userId = run.progress.userId;

  const found = await beforePointOfNoReturn(run, 'FIND_BACKUP', () => beforeRecover.findRecoverableBackup({ userId, ...(approvedAtMs !== undefined ? { approvedAtMs } : {}) }));
  run.progress.backupPairIds = found.backupPairIds;
  // Data only (no command): which copy is restored, for the progress query and the result.
  if (found.store !== undefined) run.progress.backupStore = found.store;
  const sealedBackup = await beforePointOfNoReturn(run, 'DECRYPT', async () => requireReceipt('DECRYPT', userId, await beforeRecover.decryptStoredBackup({ userId, ...found })));
  const recoverScheduledAt = Date.now();
  const recoverInput = { userId, sealedBackup, backupPairIds: found.backupPairIds, requireReceipts: true };
  const recovered = await beforePointOfNoReturn(run, 'RECOVER', () => beforeRecover.recoverAtPortal(recoverInput));
  run.progress.signingPairIds = recovered.signingPairIds;
  run.progress.orphanedSigningPairIds = recovered.orphanedSigningPairIds;

  // The point of no return: the new signing shares exist only in this run (sealed) until handed over.
  // From here a cancel (Web UI, API) cannot cut the run short: the rest runs in a non-cancellable
  // scope, so an in-flight hand-over is never abandoned half way, a failure parks for an operator
  // (who can abandon it), and the run completes.
  return CancellationScope.nonCancellable(async () => {
    const orphanScanError = await lookAgainForOrphans(run, recovered, recoverScheduledAt);
    await run.parkableSteps(['HAND_OVER', 'MARK_SIGNING'], handOverAndMark(userId, recovered));
    let freshBackup: RecoveryResult['freshBackup'];
    if (input.freshBackup !== false) {
      run.publish('RUNNING', RECOVERY_FRESH_BACKUP_STEP);
      freshBackup = await run.timed(RECOVERY_FRESH_BACKUP_STEP, () => startFreshBackup(userId));
    }
    run.publish('COMPLETED', 'DONE');
    await recordAct('recovery.completed', {
      // The run completes the act its verified requester asked for (runs from before approvals: unidentified).
      actor: run.progress.approval?.requestedBy,
      userId,
      details: { backupPairIds: Object.values(found.backupPairIds), signingPairIds: Object.values(recovered.signingPairIds), freshBackup: freshBackup?.workflowId ?? null },
    });
    await condition(allHandlersFinished);
    return {
      userId,
      status: 'COMPLETED' as const,
      backupPairIds: found.backupPairIds,
      ...(found.store !== undefined ? { backupStore: found.store } : {}),
      signingPairIds: recovered.signingPairIds,
      orphanedSigningPairIds: run.progress.orphanedSigningPairIds,
      ...(orphanScanError !== undefined ? { orphanScanError } : {}),
      ...(freshBackup ? { freshBackup } : {}),
      stepDurationsMs: run.stepDurationsMs,
      startedAt: run.progress.startedAt,
      ...(run.progress.approval ? { approval: run.progress.approval } : {}),
      completedAt: new Date(Date.now()).toISOString(),
    };
  });
}

type RecoveryRun = ParkableRun<RecoveryStep, RecoveryProgress>;
type Recovered = Awaited<ReturnType<RecoveryActivities['recoverAtPortal']>>;

function recoveryRun(userId: string, authorize?: OperatorAuthorization): RecoveryRun {
  return new ParkableRun<RecoveryStep, RecoveryProgress>({
    ...(authorize ? { authorize } : {}),
    progress: { userId, status: 'RUNNING', step: 'FIND_BACKUP', attempts: {}, orphanedSigningPairIds: [], startedAt: new Date(Date.now()).toISOString() },
    noun: 'recovery',
    query: recoveryProgressQuery,
    retryUpdate: recoveryRetryUpdate,
    abandonUpdate: recoveryAbandonUpdate,
    publishStepAlone: true,
    isRedoStep: (step): step is RecoveryStep => step === 'HAND_OVER',
    auditKinds: { retried: 'recovery.retried', abandoned: 'recovery.abandoned' },
    abandoned: (step, reason) =>
      ApplicationFailure.nonRetryable(`recovery of user ${userId} abandoned by an operator at step ${step}: ${reason}${ABANDONED_AT[step] ?? ''}`, RECOVERY_ABANDONED_ERROR_TYPE),
  });
}

/** What an operator who abandons a recovery at these steps must know. */
const ABANDONED_AT: Partial<Record<RecoveryStep, string>> = {
  HAND_OVER: ' (the new signing shares were never handed over: start a new recovery)',
  MARK_SIGNING: ' (the backend holds the new signing shares but Portal has not marked them: mark them STORED_CLIENT, or start a new recovery, before the next backup)',
};

/** A step before /v1/recover answered: a failure ends the run with its reason (nothing was made). */
async function beforePointOfNoReturn<T>(run: RecoveryRun, step: RecoveryStep, call: () => Promise<T>): Promise<T> {
  let outcome: Awaited<ReturnType<typeof run.once<T>>>;
  try {
    outcome = await run.once(step, call);
  } catch (error) {
    // Cancelled (Web UI, API) before anything was made: the recovery's end, recorded even so.
    if (isCancellation(error)) {
      const act = { userId: run.progress.userId, details: { step }, patch: AUDIT_RECOVERY_CANCELLED_PATCH };
      await CancellationScope.nonCancellable(() => recordAct('recovery.cancelled', act));
    }
    throw error;
  }
  if ('value' in outcome) return outcome.value;
  run.publish('FAILED', step);
  await recordAct('recovery.failed', { userId: run.progress.userId, details: { step, errorType: outcome.failure.type ?? null } });
  throw ApplicationFailure.create({
    type: outcome.failure.type,
    message: `recovery of user ${run.progress.userId} failed at ${step}, before Portal made new signing shares: ${outcome.failure.message}`,
    nonRetryable: true,
    ...(outcome.cause ? { cause: outcome.cause } : {}),
  });
}

/** When RECOVER's own look for orphaned signing pairs failed, look again; the note that stays, if any. */
async function lookAgainForOrphans(run: RecoveryRun, recovered: Recovered, sinceMs: number): Promise<string | undefined> {
  let orphanScanError = recovered.orphanScanError;
  if (orphanScanError === undefined) return undefined;
  try {
    const exclude = Object.values(recovered.signingPairIds);
    run.progress.orphanedSigningPairIds = await noteOnly.findOrphanedSigningPairs({ userId: run.progress.userId, sinceMs, exclude });
    return undefined;
  } catch (error) {
    orphanScanError = `${orphanScanError}; looked again and failed: ${activityErrorMessage(error)}`;
    run.progress.orphanScanError = orphanScanError;
    return orphanScanError;
  }
}

/** The steps after the point of no return: RECOVER acts on DECRYPT's receipt, MARK_SIGNING only on HAND_OVER's. */
function handOverAndMark(userId: string, recovered: Recovered): (step: RecoveryStep) => Promise<void> {
  let handOver: unknown;
  return async (step) => {
    if (step === 'HAND_OVER') {
      const result = await afterRecover.handOverSigningShares({ userId, sealedSigningShares: recovered.sealedSigningShares });
      handOver = requireReceipt('HAND_OVER', userId, result).receipt;
    } else {
      const marked = await afterRecover.markSigningPairsStored({ userId, signingPairIds: recovered.signingPairIds, handOver, requireReceipts: true });
      await requireVerifiedReceipt('MARK_SIGNING', pairClaims(userId, recovered.signingPairIds), marked);
    }
  };
}

/**
 * Starts the recovered wallet's fresh backup as an abandoned child (it outlives this run, which
 * ends now). A backup already running for the user (started meanwhile) is joined instead.
 */
async function startFreshBackup(userId: string): Promise<NonNullable<RecoveryResult['freshBackup']>> {
  const workflowId = backupWorkflowId(userId);
  try {
    const child = await startChild<typeof backupWallet>('backupWallet', {
      workflowId,
      args: [{ userId }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      typedSearchAttributes: initialBackupSearchAttributes(),
      // The recovered wallet's user waits for it (contracts/run-priority.ts); a recovery recorded
      // before the patch replays its child start without a priority.
      ...(patched(RECOVERY_BACKUP_PRIORITY_PATCH) ? { priority: INTERACTIVE_PRIORITY } : {}),
    });
    return { workflowId, runId: child.firstExecutionRunId, alreadyRunning: false };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, alreadyRunning: true };
    throw error;
  }
}
