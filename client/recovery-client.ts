import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { RecoveryProgress, RecoveryResult } from '../domain/recovery-types';
import { parseUserId, recoveryWorkflowId } from '../domain/user-id';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import { userRunStatus, type UserRunStatusView } from './user-run-status';
import type { recoverWallet } from '../workflows/recover-wallet';
import {
  AWAITING_APPROVAL,
  RECOVERY_APPROVAL_STEP,
  recoveryAbandonUpdate,
  recoveryApproveUpdate,
  recoveryProgressQuery,
  recoveryRejectUpdate,
  recoveryRetryUpdate,
  type SignedAbandonRequest,
  type SignedRetryRequest,
} from '../contracts/recover-wallet-api';
import type { OperatorActionKind } from '../domain/operator-action';
import { BackupNotFoundError, rejectedAsTyped, resultOrFailure } from './backup-client';
import { requireSigner, signForCurrentRun, type OperatorSigner } from './operator-signer';
import { untilRequesterVerified } from './requester-check-wait';
import { INTERACTIVE_PRIORITY } from '../contracts/run-priority';

export interface StartedRecovery {
  userId: string;
  workflowId: string;
  runId: string;
  /** True when a recovery of this user was already running and was returned instead. */
  alreadyRunning: boolean;
}

export type RecoveryStatusView = UserRunStatusView<RecoveryProgress, RecoveryResult>;

const MEMO_START_REQUEST = 'startRequestId';

/**
 * Recovery of users' wallets from their backups, over one Temporal client (see workflows/recover-wallet.ts).
 * Start, approve, reject, retry and abandon are signed by `signer` (the operator's identity; the
 * workers verify it): without one they are refused here (OperatorIdentityRequiredError).
 */
export class RecoveryClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
    readonly signer?: OperatorSigner,
  ) {}

  /** The same client acting as another identity (the HTTP API: one per named token). */
  as(signer: OperatorSigner): RecoveryClient {
    return new RecoveryClient(this.temporal, this.taskQueue, signer);
  }

  /** Recoveries on this task queue, newest first: status, step, times (`--status` filters, NEEDS_ATTENTION included). */
  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'recoverWallet', idPrefix: 'recover-', parkable: true }, options);
  }

  /**
   * Starts the recovery of one user's wallet from its newest completed backup, or returns the
   * recovery already running for that user. The recovery waits for a running backup of the user.
   */
  async startRecovery(rawUserId: string, options: { freshBackup?: boolean } = {}): Promise<StartedRecovery> {
    const userId = parseUserId(rawUserId);
    const workflowId = recoveryWorkflowId(userId);
    const requestId = randomUUID();
    const request = await this.requireSigner('start a recovery').sign({ kind: 'recover-start', workflowId, userId });
    const handle = await this.temporal.workflow.start<typeof recoverWallet>('recoverWallet', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ userId, request, ...(options.freshBackup === false ? { freshBackup: false } : {}) }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      memo: { [MEMO_START_REQUEST]: requestId },
      // Someone waits for it: ahead of batch children at the task queue and at Portal's limiter.
      priority: INTERACTIVE_PRIORITY,
      typedSearchAttributes: new TypedSearchAttributes([
        { key: BackupStatusKey, value: AWAITING_APPROVAL },
        { key: BackupStepKey, value: RECOVERY_APPROVAL_STEP },
      ]),
    });
    const description = await this.temporal.workflow.getHandle(workflowId, handle.firstExecutionRunId).describe();
    return { userId, workflowId, runId: handle.firstExecutionRunId, alreadyRunning: description.memo?.[MEMO_START_REQUEST] !== requestId };
  }

  getRecoveryStatus(rawUserId: string): Promise<RecoveryStatusView> {
    const userId = parseUserId(rawUserId);
    return userRunStatus(this.temporal, { userId, workflowId: recoveryWorkflowId(userId), noun: 'recovery' }, recoveryProgressQuery);
  }

  /** Waits for the user's recovery to finish; throws BackupFailedError when it did not complete. */
  async waitForRecovery(rawUserId: string, runId?: string): Promise<RecoveryResult> {
    const userId = parseUserId(rawUserId);
    return resultOrFailure(userId, 'recovery', this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId), runId).result());
  }

  /** Approves the user's recovery waiting at APPROVAL, as this client's operator (the requester cannot; a repeat counts once). */
  async approveRecovery(rawUserId: string): Promise<RecoveryProgress> {
    const { userId, handle, action } = await this.signedFor(rawUserId, 'recover-approve');
    return rejectedAsTyped(handle, userId, 'approve', handle.executeUpdate(recoveryApproveUpdate, { args: [{ action }] }), 'recovery');
  }

  /** Rejects the user's recovery waiting at APPROVAL: the run ends with this reason. */
  async rejectRecovery(rawUserId: string, reason: string): Promise<RecoveryProgress> {
    const { userId, handle, action } = await this.signedFor(rawUserId, 'recover-reject', reason);
    return rejectedAsTyped(handle, userId, 'reject', handle.executeUpdate(recoveryRejectUpdate, { args: [{ action }] }), 'recovery');
  }

  /**
   * Resumes a recovery parked as NEEDS_ATTENTION from the step that failed, signed by this client's
   * operator. Without a signer the retry is sent unsigned with `requestedBy` as a note: only runs
   * started before approvals existed take it (every newer run refuses it).
   */
  async retryRecovery(rawUserId: string, requestedBy?: string): Promise<RecoveryProgress> {
    if (!this.signer) return this.unsigned(rawUserId, 'retry', (handle) => handle.executeUpdate(recoveryRetryUpdate, { args: [requestedBy ? { requestedBy } : {}] }));
    const { userId, handle, action } = await this.signedFor(rawUserId, 'recover-retry');
    const request: SignedRetryRequest = { requestedBy: this.signer.operator, action };
    return rejectedAsTyped(handle, userId, 'retry', handle.executeUpdate(recoveryRetryUpdate, { args: [request] }), 'recovery');
  }

  /** Ends a parked recovery; the reason (signed) is kept in the run's failure with who abandoned it. Unsigned without a signer, as retry. */
  async abandonRecovery(rawUserId: string, reason: string, requestedBy?: string): Promise<RecoveryProgress> {
    if (!this.signer) {
      return this.unsigned(rawUserId, 'abandon', (handle) => handle.executeUpdate(recoveryAbandonUpdate, { args: [{ reason, ...(requestedBy ? { requestedBy } : {}) }] }));
    }
    const { userId, handle, action } = await this.signedFor(rawUserId, 'recover-abandon', reason.trim());
    const request: SignedAbandonRequest = { reason: reason.trim(), requestedBy: this.signer.operator, action };
    return rejectedAsTyped(handle, userId, 'abandon', handle.executeUpdate(recoveryAbandonUpdate, { args: [request] }), 'recovery');
  }

  private unsigned(rawUserId: string, action: string, send: (handle: WorkflowHandle<typeof recoverWallet>) => Promise<RecoveryProgress>): Promise<RecoveryProgress> {
    const userId = parseUserId(rawUserId);
    const handle = this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId));
    return rejectedAsTyped(handle, userId, action, send(handle), 'recovery');
  }

  /** The user's current recovery run and this operator's signed action on it. */
  private async signedFor(rawUserId: string, kind: OperatorActionKind, reason?: string) {
    const userId = parseUserId(rawUserId);
    const signer = this.requireSigner(kind.replace('recover-', '') + ' a recovery');
    const workflowId = recoveryWorkflowId(userId);
    const notFound = (error: unknown) => (error instanceof WorkflowNotFoundError ? new BackupNotFoundError(`no recovery was ever started for user ${userId}`) : error);
    if (kind === 'recover-approve' || kind === 'recover-reject') await untilRequesterVerified(this.temporal, workflowId);
    const signed = await signForCurrentRun(this.temporal.workflow, signer, { kind, workflowId, userId, ...(reason !== undefined ? { reason } : {}) }, notFound);
    // The update goes to the very run signed for: a newer run would refuse it anyway.
    const handle = this.temporal.workflow.getHandle<typeof recoverWallet>(workflowId, signed.runId);
    return { userId, handle, action: signed.action };
  }

  private requireSigner(what: string): OperatorSigner {
    return requireSigner(this.signer, what);
  }
}
