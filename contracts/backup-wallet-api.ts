/**
 * The public surface of the backupWallet workflow: its input, query, updates and search
 * attributes. Imported by the workflow and by clients; deterministic and free of Node APIs.
 */
import { defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BackupProgress } from '../domain/backup-types';
import type { SignedOperatorAction } from '../domain/operator-action';

export const BACKUP_TASK_QUEUE_DEFAULT = 'mpc-backup';

export interface BackupWalletInput {
  userId: string;
}

export const progressQuery = defineQuery<BackupProgress>('progress');

/** Resume a parked backup from the step that failed (after the cause was fixed): signed by the operator (`backup-retry`). */
export const retryUpdate = defineUpdate<BackupProgress, [RetryRequest]>('retry');
export interface RetryRequest {
  /** A claimed name: recorded only by runs from before signed actions; newer runs record the verified operator. */
  requestedBy?: string;
  /** The operator's signed statement of this retry of this run (required since BACKUP_SIGNED_DECISIONS_PATCH). */
  action?: SignedOperatorAction;
}

/** End a parked backup without completing it; the reason (signed in the action) is recorded in the failure. */
export const abandonUpdate = defineUpdate<BackupProgress, [AbandonRequest]>('abandon');
export interface AbandonRequest {
  reason: string;
  requestedBy?: string;
  /** The operator's signed statement of this abandon, with this reason (`backup-abandon`). */
  action?: SignedOperatorAction;
}

/**
 * Guards the worker's check of a backup's signed retry and abandon (a local activity in the
 * update's handler): a decision recorded before it replays without the check (docs/changing-workflows.md).
 */
export const BACKUP_SIGNED_DECISIONS_PATCH = 'backup-signed-decisions';

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
