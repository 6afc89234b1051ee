/**
 * The public surface of the backupWallet workflow: its input, query, updates and search
 * attributes. Imported by the workflow and by clients; deterministic and free of Node APIs.
 */
import { defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BackupProgress } from '../domain/backup-types';

export const BACKUP_TASK_QUEUE_DEFAULT = 'mpc-backup';

export interface BackupWalletInput {
  userId: string;
}

export const progressQuery = defineQuery<BackupProgress>('progress');

/** Resume a parked backup from the step that failed (after the cause was fixed). */
export const retryUpdate = defineUpdate<BackupProgress, [RetryRequest]>('retry');
export interface RetryRequest {
  /** Who asked, for the record. */
  requestedBy?: string;
}

/** End a parked backup without completing it; the reason is recorded in the failure. */
export const abandonUpdate = defineUpdate<BackupProgress, [AbandonRequest]>('abandon');
export interface AbandonRequest {
  reason: string;
  requestedBy?: string;
}

/**
 * Registered on the server: `--search-attribute BackupStatus=Keyword --search-attribute
 * BackupStep=Keyword --search-attribute BatchId=Keyword --search-attribute DrillId=Keyword` (BatchId: see
 * batch-backup-api.ts; DrillId: the restore drill that found a backup failing).
 */
export const BackupStatusKey = defineSearchAttributeKey('BackupStatus', SearchAttributeType.KEYWORD);
export const BackupStepKey = defineSearchAttributeKey('BackupStep', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = { BackupStatus: 'Keyword', BackupStep: 'Keyword', BatchId: 'Keyword', DrillId: 'Keyword' } as const;

export const ABANDONED_ERROR_TYPE = 'BackupAbandoned';

/** What a backup's search attributes say from the moment it starts (set by whoever starts it). */
export function initialBackupSearchAttributes(): TypedSearchAttributes {
  return new TypedSearchAttributes([
    { key: BackupStatusKey, value: 'RUNNING' },
    { key: BackupStepKey, value: 'MPC_BACKUP' },
  ]);
}
