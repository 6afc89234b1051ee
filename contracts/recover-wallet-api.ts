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

export interface RecoverWalletInput {
  userId: string;
  /** Start a fresh backup of the recovered wallet at the end (default true). */
  freshBackup?: boolean;
}

export const recoveryProgressQuery = defineQuery<RecoveryProgress>('progress');
export const recoveryRetryUpdate = defineUpdate<RecoveryProgress, [RetryRequest]>('retry');
export const recoveryAbandonUpdate = defineUpdate<RecoveryProgress, [AbandonRequest]>('abandon');

/** The step in which a recovery starts the user's fresh backup; that backup's run guard lets it pass. */
export const RECOVERY_FRESH_BACKUP_STEP = 'FRESH_BACKUP';

export const RECOVERY_ABANDONED_ERROR_TYPE = 'RecoveryAbandoned';
