/**
 * The public surface of the recoverWallet workflow (imported by the workflow, the activities'
 * run guard and clients); deterministic and free of Node APIs. It answers the same query and
 * updates as a backup (`progress`, `retry`, `abandon`) and sets the same search attributes
 * (BackupStatus, BackupStep), so operators steer both the same way; filter with
 * `WorkflowType = "recoverWallet"`.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { RecoveryProgress } from '../domain/recovery-types';
import type { AbandonRequest, RetryRequest } from './backup-wallet-api';
import type { SignedOperatorAction } from '../domain/operator-action';

export interface RecoverWalletInput {
  userId: string;
  /** Start a fresh backup of the recovered wallet at the end (default true). */
  freshBackup?: boolean;
  /** The requester's signed `recover-start` (required: a recovery without one fails at APPROVAL). */
  request?: SignedOperatorAction;
}

/** An approval or rejection: the approver's signed `recover-approve` / `recover-reject` for this run. */
export interface ApprovalRequest {
  action: SignedOperatorAction;
}

/** Retry and abandon of a recovery carry the operator's signed action too (RetryRequest's free-text name is ignored). */
export interface SignedRetryRequest extends RetryRequest {
  action?: SignedOperatorAction;
}
export interface SignedAbandonRequest extends AbandonRequest {
  action?: SignedOperatorAction;
}

export const recoveryProgressQuery = defineQuery<RecoveryProgress>('progress');
export const recoveryRetryUpdate = defineUpdate<RecoveryProgress, [RetryRequest]>('retry');
export const recoveryAbandonUpdate = defineUpdate<RecoveryProgress, [AbandonRequest]>('abandon');
/** Approve a recovery waiting at APPROVAL (a duplicate by the same approver counts once). */
export const recoveryApproveUpdate = defineUpdate<RecoveryProgress, [ApprovalRequest]>('approve');
/** Reject a recovery waiting at APPROVAL: the run ends with the signed reason. */
export const recoveryRejectUpdate = defineUpdate<RecoveryProgress, [ApprovalRequest]>('reject');

/** The step (and BackupStatus) of a recovery waiting for its approvals. */
export const RECOVERY_APPROVAL_STEP = 'APPROVAL';
export const AWAITING_APPROVAL = 'AWAITING_APPROVAL';
/** The patch id of the approval step (docs/changing-workflows.md): runs recorded before it replay without it. */
export const RECOVERY_APPROVAL_PATCH = 'recovery-approval-v1';
/** The patch id of waiting, once approved, until every approval is in the audit trail (before FIND_BACKUP). */
export const RECOVERY_APPROVALS_RECORDED_FIRST_PATCH = 'recovery-approvals-recorded-first';

export const RECOVERY_REJECTED_ERROR_TYPE = 'RecoveryRejected';
export const RECOVERY_APPROVAL_EXPIRED_ERROR_TYPE = 'RecoveryApprovalExpired';
export const RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE = 'RecoveryRequestUnverified';

/** The step in which a recovery starts the user's fresh backup; that backup's run guard lets it pass. */
export const RECOVERY_FRESH_BACKUP_STEP = 'FRESH_BACKUP';

export const RECOVERY_ABANDONED_ERROR_TYPE = 'RecoveryAbandoned';
