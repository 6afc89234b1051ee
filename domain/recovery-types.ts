import type { BackupPairIds, BackupStatus } from './backup-types';

/**
 * A recovery's steps. APPROVAL waits for the configured number of distinct verified approvers
 * (status AWAITING_APPROVAL); a rejection or expiry ends the run there, before anything is read. FIND_BACKUP, DECRYPT and RECOVER may fail the run (nothing new exists until
 * Portal answers /v1/recover); from HAND_OVER on, new signing shares exist and a permanent error
 * parks the run for an operator instead.
 */
export const RECOVERY_STEPS = ['APPROVAL', 'FIND_BACKUP', 'DECRYPT', 'RECOVER', 'HAND_OVER', 'MARK_SIGNING', 'FRESH_BACKUP'] as const;
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
  /** The store whose copy of that backup is restored: the first of CIPHERTEXT_STORES that verified. */
  backupStore?: string;
  /** The signing share pairs Portal made for this recovery. */
  signingPairIds?: BackupPairIds;
  /** Signing pairs made by /v1/recover calls whose answers were lost: never handed over or marked. */
  orphanedSigningPairIds: string[];
  /** Set when the run could not look for orphaned signing pairs. */
  orphanScanError?: string;
  startedAt: string;
  /** The approval step (recoveries started since approvals exist). */
  approval?: RecoveryApproval;
  /** The verified operator of the last retry or abandon. */
  decidedBy?: string;
}

/** Who asked, who approved, how many are needed, until when. */
export interface RecoveryApproval {
  /** The verified requester (their signed `recover-start`). */
  requestedBy?: string;
  required: number;
  /** Distinct verified approvers so far, in order. */
  approvedBy: { operator: string; at: string }[];
  /** When the request expires if not approved by then. */
  expiresAt?: string;
  rejectedBy?: { operator: string; at: string; reason: string };
}

export interface RecoveryResult {
  userId: string;
  status: 'COMPLETED';
  backupPairIds: BackupPairIds;
  /** The store whose copy of the backup was restored (absent from runs that found it before copies). */
  backupStore?: string;
  signingPairIds: BackupPairIds;
  orphanedSigningPairIds: string[];
  /** Set when the run could not look for orphaned signing pairs (so the list above may be short). */
  orphanScanError?: string;
  /** The fresh backup started after the recovery (its workflow id), when asked for. */
  freshBackup?: { workflowId: string; runId?: string; alreadyRunning: boolean };
  stepDurationsMs: Partial<Record<RecoveryStep, number>>;
  startedAt: string;
  completedAt: string;
  /** Who requested and who approved (recoveries started since approvals exist). */
  approval?: RecoveryApproval;
}
