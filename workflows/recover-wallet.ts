import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  ParentClosePolicy,
  ChildWorkflowCancellationType,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { RecoveryActivities } from '../activities/recovery/recovery-activities';
import type { BackupStatus } from '../domain/backup-types';
import type { RecoveryProgress, RecoveryResult, RecoveryStep } from '../domain/recovery-types';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { backupWorkflowId } from '../domain/user-id';
import { BackupStatusKey, BackupStepKey, initialBackupSearchAttributes, type AbandonRequest, type RetryRequest } from '../contracts/backup-wallet-api';
import type { backupWallet } from './backup-wallet';
import {
  RECOVERY_ABANDONED_ERROR_TYPE,
  RECOVERY_FRESH_BACKUP_STEP,
  recoveryAbandonUpdate,
  recoveryProgressQuery,
  recoveryRetryUpdate,
  type RecoverWalletInput,
} from '../contracts/recover-wallet-api';
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
import { requireVerifiedReceipt } from './receipt-checks';
import { pairClaims } from '../domain/step-receipt';

/** Steps before /v1/recover answered: nothing new exists yet, so a permanent error fails the run. */
const beforeRecover = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: GIVE_UP_AFTER, retry: BEFORE_NO_RETURN_RETRY });

/** After it: new signing shares exist; transient errors retry without end, permanent ones park. */
const afterRecover = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, retry: AFTER_NO_RETURN_RETRY });

/** A second look for orphaned signing pairs; its failure only leaves a note in the result. */
const noteOnly = proxyActivities<RecoveryActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: NOTE_ONLY_GIVE_UP_AFTER, retry: NOTE_ONLY_RETRY });

/**
 * Recovers one user's wallet from its newest completed backup: find it and read the ciphertexts →
 * decrypt and rebuild Portal's `/v1/backup` response (sealed to the workers) → `/v1/recover` →
 * hand the new signing shares to the company's backend → mark them STORED_CLIENT → (optionally) a
 * fresh backup. Once Portal has made the new signing shares, the run never fails on its own: a
 * permanent error parks it as NEEDS_ATTENTION until an operator sends `retry` or `abandon`.
 */
export async function recoverWallet(input: RecoverWalletInput): Promise<RecoveryResult> {
  const userId = userIdFromInput(input);
  const run = new RecoveryRun(userId);
  run.registerHandlers();

  const found = await run.beforePointOfNoReturn('FIND_BACKUP', () => beforeRecover.findRecoverableBackup({ userId }));
  run.progress.backupPairIds = found.backupPairIds;
  const decrypt = () => beforeRecover.decryptStoredBackup({ userId, ...found });
  const sealedBackup = await run.beforePointOfNoReturn('DECRYPT', async () => requireReceipt('DECRYPT', userId, await decrypt()));
  const recoverScheduledAt = Date.now();
  const recoverInput = { userId, sealedBackup, backupPairIds: found.backupPairIds, requireReceipts: true };
  const recovered = await run.beforePointOfNoReturn('RECOVER', () => beforeRecover.recoverAtPortal(recoverInput));
  run.progress.signingPairIds = recovered.signingPairIds;
  run.progress.orphanedSigningPairIds = recovered.orphanedSigningPairIds;

  // The point of no return: the new signing shares exist only in this run (sealed) until handed over.
  // From here a cancel (Web UI, API) cannot cut the run short: the rest runs in a non-cancellable
  // scope, so an in-flight hand-over is never abandoned half way, a failure parks for an operator
  // (who can abandon it), and the run completes.
  return CancellationScope.nonCancellable(async () => {
    let orphanScanError = recovered.orphanScanError;
    if (orphanScanError !== undefined) {
      try {
        run.progress.orphanedSigningPairIds = await noteOnly.findOrphanedSigningPairs({
          userId,
          sinceMs: recoverScheduledAt,
          exclude: Object.values(recovered.signingPairIds),
        });
        orphanScanError = undefined;
      } catch (error) {
        orphanScanError = `${orphanScanError}; looked again and failed: ${activityErrorMessage(error)}`;
      }
    }
    if (orphanScanError !== undefined) run.progress.orphanScanError = orphanScanError;
    let handOver: unknown;
    const steps = ['HAND_OVER', 'MARK_SIGNING'] as const;
    const call = async (step: (typeof steps)[number]) => {
      if (step === 'HAND_OVER') {
        const result = await afterRecover.handOverSigningShares({ userId, sealedSigningShares: recovered.sealedSigningShares });
        handOver = requireReceipt('HAND_OVER', userId, result).receipt;
      } else {
        const marked = await afterRecover.markSigningPairsStored({ userId, signingPairIds: recovered.signingPairIds, handOver, requireReceipts: true });
        await requireVerifiedReceipt('MARK_SIGNING', pairClaims(userId, recovered.signingPairIds), marked);
      }
    };
    for (let at = 0; at < steps.length; ) {
      const redo = await run.parkableOrRedo(steps[at]!, () => call(steps[at]!));
      at = redo === 'HAND_OVER' ? 0 : at + 1;
    }

    let freshBackup: RecoveryResult['freshBackup'];
    if (input.freshBackup !== false) {
      run.publish('RUNNING', RECOVERY_FRESH_BACKUP_STEP);
      freshBackup = await run.timed(RECOVERY_FRESH_BACKUP_STEP, () => startFreshBackup(userId));
    }
    run.publish('COMPLETED', 'DONE');
    await condition(allHandlersFinished);
    return {
      userId,
      status: 'COMPLETED' as const,
      backupPairIds: found.backupPairIds,
      signingPairIds: recovered.signingPairIds,
      orphanedSigningPairIds: run.progress.orphanedSigningPairIds,
      ...(orphanScanError !== undefined ? { orphanScanError } : {}),
      ...(freshBackup ? { freshBackup } : {}),
      stepDurationsMs: run.stepDurationsMs,
      startedAt: run.progress.startedAt,
      completedAt: new Date(Date.now()).toISOString(),
    };
  });
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
    });
    return { workflowId, runId: child.firstExecutionRunId, alreadyRunning: false };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, alreadyRunning: true };
    throw error;
  }
}

/** One recovery's state: progress, search attributes, step timing and the operator's decisions. */
class RecoveryRun {
  readonly progress: RecoveryProgress;
  readonly stepDurationsMs: Partial<Record<RecoveryStep, number>> = {};
  private decision: OperatorDecision | undefined;
  private published: { status?: string; step?: string };

  constructor(private readonly userId: string) {
    this.progress = {
      userId,
      status: 'RUNNING',
      step: 'FIND_BACKUP',
      attempts: {},
      orphanedSigningPairIds: [],
      startedAt: new Date(Date.now()).toISOString(),
    };
    const initial = workflowInfo().typedSearchAttributes;
    this.published = { status: initial.get(BackupStatusKey), step: initial.get(BackupStepKey) };
  }

  registerHandlers(): void {
    setHandler(recoveryProgressQuery, () => this.progress);
    setHandler(
      recoveryRetryUpdate,
      async (_request: RetryRequest) => {
        this.decision = { kind: 'retry' };
        // Non-cancellable: a cancel request of the run must not fail the operator's answer (the run goes on).
        await CancellationScope.nonCancellable(() => condition(() => this.progress.status !== 'NEEDS_ATTENTION'));
        return this.progress;
      },
      {
        validator: (request: RetryRequest) => {
          if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
          this.requireParked();
        },
      },
    );
    setHandler(
      recoveryAbandonUpdate,
      async (request: AbandonRequest) => {
        this.decision = { kind: 'abandon', reason: request.reason.trim() };
        // Non-cancellable: a cancel request of the run must not fail the operator's answer (the run goes on).
        await CancellationScope.nonCancellable(() => condition(() => this.progress.status !== 'NEEDS_ATTENTION'));
        return this.progress;
      },
      {
        validator: (request: AbandonRequest) => {
          if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
          this.requireParked();
          if (typeof request?.reason !== 'string' || request.reason.trim().length === 0 || request.reason.length > 1000) {
            throw new Error('abandon needs a reason of 1 to 1000 characters');
          }
        },
      },
    );
  }

  /** Sets status and step; upserts the search attributes only when they change. */
  publish(status: BackupStatus, step: RecoveryProgress['step']): void {
    this.progress.status = status;
    this.progress.step = step;
    if (this.published.status === status && this.published.step === step) return;
    this.published = { status, step };
    upsertSearchAttributes([
      { key: BackupStatusKey, value: status },
      { key: BackupStepKey, value: step },
    ]);
  }

  async timed<T>(step: RecoveryStep, body: () => Promise<T>): Promise<T> {
    const started = Date.now();
    try {
      return await body();
    } finally {
      this.stepDurationsMs[step] = (this.stepDurationsMs[step] ?? 0) + (Date.now() - started);
    }
  }

  /**
   * One try of a step: publishes it as running and counts the attempt; a cancellation is published
   * and rethrown; an activity's failure is recorded as the last error and returned.
   */
  private async attempt<T>(
    step: RecoveryStep,
    call: () => Promise<T>,
  ): Promise<{ value: T } | { failure: ActivityFailure | StepResultRefused; redo?: RecoveryStep }> {
    this.publish('RUNNING', step);
    this.progress.attempts[step] = (this.progress.attempts[step] ?? 0) + 1;
    try {
      return { value: await call() };
    } catch (error) {
      if (isCancellation(error)) {
        this.publish('CANCELLED', step);
        throw error;
      }
      if (error instanceof StepResultRefused) {
        this.progress.lastError = { ...error.recorded, step };
        return { failure: error };
      }
      if (!(error instanceof ActivityFailure)) throw error;
      this.progress.lastError = recordActivityError(step, error);
      const redo = redoStepOfFailure(error);
      return { failure: error, ...(redo === 'HAND_OVER' ? { redo } : {}) };
    }
  }

  /** A step before /v1/recover answered: a failure ends the run with its reason (nothing was made). */
  beforePointOfNoReturn<T>(step: RecoveryStep, call: () => Promise<T>): Promise<T> {
    return this.timed(step, async () => {
      const outcome = await this.attempt(step, call);
      if ('value' in outcome) return outcome.value;
      this.publish('FAILED', step);
      throw ApplicationFailure.create({
        type: this.progress.lastError!.type,
        message: `recovery of user ${this.userId} failed at ${step}, before Portal made new signing shares: ${this.progress.lastError!.message}`,
        nonRetryable: true,
        ...(outcome.failure instanceof ActivityFailure ? { cause: outcome.failure } : {}),
      });
    });
  }

  /**
   * A step after the point of no return: a permanent failure parks until an operator decides. When
   * the failure was a refused receipt of an earlier step, the operator's retry returns that step,
   * to run it again, rather than this one.
   */
  parkableOrRedo(step: RecoveryStep, call: () => Promise<void>): Promise<RecoveryStep | undefined> {
    return this.timed(step, async () => {
      for (;;) {
        const outcome = await this.attempt(step, call);
        if ('value' in outcome) return undefined;
        await this.parkUntilDecided(step);
        if (outcome.redo !== undefined && outcome.redo !== step) return outcome.redo;
      }
    });
  }

  /** Parks at `step` until an operator decides: returns on retry, ends the run on abandon. */
  private async parkUntilDecided(step: RecoveryStep): Promise<void> {
    this.decision = undefined;
    this.publish('NEEDS_ATTENTION', step);
    try {
      await condition(() => this.decision !== undefined);
    } catch (waitError) {
      if (isCancellation(waitError)) this.publish('CANCELLED', step);
      throw waitError;
    }
    const chosen = this.decision as OperatorDecision | undefined;
    if (chosen?.kind === 'abandon') {
      this.publish('ABANDONED', step);
      await condition(allHandlersFinished);
      throw ApplicationFailure.nonRetryable(
        `recovery of user ${this.userId} abandoned by an operator at step ${step}: ${chosen.reason}` +
          (step === 'HAND_OVER'
            ? ' (the new signing shares were never handed over: start a new recovery)'
            : step === 'MARK_SIGNING'
              ? ' (the backend holds the new signing shares but Portal has not marked them: mark them STORED_CLIENT, or start a new recovery, before the next backup)'
              : ''),
        RECOVERY_ABANDONED_ERROR_TYPE,
      );
    }
  }

  private requireParked(): void {
    if (this.progress.status !== 'NEEDS_ATTENTION') {
      throw new Error(`the recovery of user ${this.userId} is ${this.progress.status}, not NEEDS_ATTENTION`);
    }
    // Both updates in one workflow task: the first decision wins, the other is refused.
    if (this.decision !== undefined) {
      throw new Error(`the recovery of user ${this.userId} already has an operator decision (${this.decision.kind}) being carried out`);
    }
  }
}

