import type { Curve } from './curves';

/** One backup share pair exactly as Portal's `/v1/backup` returns it for a curve. */
export interface BackupShare {
  id: string;
  share: string;
}

/** The whole `/v1/backup` response: one pair per curve. Plaintext: only ever in encoded payloads. */
export type BackupShares = Record<Curve, BackupShare>;

/**
 * The `/v1/backup` response sealed with the workers' key (AES-256-GCM, bound to the user): what
 * step 1 hands to step 2 through workflow history. Opaque to every holder of the payload codec key.
 */
export interface SealedShares {
  /** Id of the SHARE_SEALING_KEYS entry that sealed it. */
  keyId: string;
  /** base64 of iv | ciphertext | tag. */
  data: string;
}

/** The Vault Transit ciphertext of one curve's `{id, share}` object. */
export interface EncryptedShare {
  pairId: string;
  ciphertext: string;
  /** SHA-256 (hex) of the exact plaintext bytes, so the store step can verify a read-back. */
  plaintextSha256: string;
}

export type EncryptedShares = Record<Curve, EncryptedShare>;

export type BackupPairIds = Record<Curve, string>;

/** CHECK_CUSTODIAN runs in Self-Managed mode only, between STORE and MARK. */
export const BACKUP_STEPS = ['MPC_BACKUP', 'ENCRYPT', 'STORE', 'CHECK_CUSTODIAN', 'MARK'] as const;
export type BackupStep = (typeof BACKUP_STEPS)[number];

export type BackupStatus = 'AWAITING_APPROVAL' | 'RUNNING' | 'NEEDS_ATTENTION' | 'COMPLETED' | 'FAILED' | 'ABANDONED' | 'CANCELLED';

export interface RecordedError {
  step: BackupStep;
  type: string;
  message: string;
  at: string;
}

export interface BackupProgress {
  userId: string;
  status: BackupStatus;
  step: BackupStep | 'DONE';
  /** Activity attempts the workflow has seen fail or succeed, per step. */
  attempts: Partial<Record<BackupStep, number>>;
  lastError?: RecordedError;
  pairIds?: BackupPairIds;
  orphanedPairIds: string[];
  startedAt: string;
}

export interface BackupResult {
  userId: string;
  status: 'COMPLETED';
  pairIds: BackupPairIds;
  /** Pairs Portal created in a step-1 attempt whose response was lost; never stored or marked. */
  orphanedPairIds: string[];
  /** Set when the orphan scan failed; orphanedPairIds may then be incomplete. */
  orphanScanError?: string;
  /** Milliseconds spent in each step, including retries and time parked. */
  stepDurationsMs: Partial<Record<BackupStep, number>>;
  startedAt: string;
  completedAt: string;
}
