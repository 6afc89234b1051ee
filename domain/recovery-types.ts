import type { BackupPairIds, BackupStatus } from './backup-types';

/**
 * A recovery's steps. FIND_BACKUP, DECRYPT and RECOVER may fail the run (nothing new exists until
 * Portal answers /v1/recover); from HAND_OVER on, new signing shares exist and a permanent error
 * parks the run for an operator instead.
 */
export const RECOVERY_STEPS = ['FIND_BACKUP', 'DECRYPT', 'RECOVER', 'HAND_OVER', 'MARK_SIGNING', 'FRESH_BACKUP'] as const;
export type RecoveryStep = (typeof RECOVERY_STEPS)[number];

export interface RecoveryRecordedError {
  step: RecoveryStep;
  type: string;
  message: string;
  at: string;
}

export interface RecoveryProgress {
  userId: string;
  status: BackupStatus;
  step: RecoveryStep | 'DONE';
  attempts: Partial<Record<RecoveryStep, number>>;
  lastError?: RecoveryRecordedError;
  /** The backup share pairs being restored (the newest completed ones). */
  backupPairIds?: BackupPairIds;
  /** The signing share pairs Portal made for this recovery. */
  signingPairIds?: BackupPairIds;
  /** Signing pairs made by /v1/recover calls whose answers were lost: never handed over or marked. */
  orphanedSigningPairIds: string[];
  /** Set when the run could not look for orphaned signing pairs. */
  orphanScanError?: string;
  startedAt: string;
}

export interface RecoveryResult {
  userId: string;
  status: 'COMPLETED';
  backupPairIds: BackupPairIds;
  signingPairIds: BackupPairIds;
  orphanedSigningPairIds: string[];
  /** Set when the run could not look for orphaned signing pairs (so the list above may be short). */
  orphanScanError?: string;
  /** The fresh backup started after the recovery (its workflow id), when asked for. */
  freshBackup?: { workflowId: string; runId?: string; alreadyRunning: boolean };
  stepDurationsMs: Partial<Record<RecoveryStep, number>>;
  startedAt: string;
  completedAt: string;
}
