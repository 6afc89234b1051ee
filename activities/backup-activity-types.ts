import type { BackupPairIds, BackupShares, EncryptedShares, SealedShares } from '../domain/backup-types';
import type { StepReceipt } from '../domain/step-receipt';
import type { BackupModeCheck } from './backup/backup-mode';
import type { StoreCopiesDeps } from '../adapters/stores/ciphertext-copies';
import type { CredentialsSource } from '../adapters/credentials/credentials-source';
import type { PortalClient } from '../adapters/portal/portal-client';
import type { ShareSealer } from '../adapters/sealing/share-sealer';
import type { StepReceipts } from './step-receipts';
import type { UserRunGuard } from './user-run-guard';
import type { VaultAccessCheck } from '../adapters/vault/vault-access-check';
import type { KmsProvider } from '../adapters/kms/kms-provider';

/** What the backup steps (activities/backup/) need, and the inputs and results they exchange through history. */
export interface ActivityDeps extends StoreCopiesDeps {
  credentials: CredentialsSource;
  portal: PortalClient;
  /** The KMS (KMS_PROVIDER: Vault Transit or AWS KMS envelope encryption); named `transit` since it was Transit only. */
  transit: KmsProvider;
  /** Seals shares with the workers' own key while they sit in workflow history. */
  sealer: ShareSealer;
  /** Proves a step's result came from a worker of the run (see StepReceipts); keyed from the sealing ring. */
  receipts: StepReceipts;
  /** BACKUP_MODE, checked against Portal's environment before step 1 makes anything. */
  modeCheck: BackupModeCheck;
  /** Self-Managed: the custodian shares the webhook committed (absent in Portal-Managed mode). */
  custodianShares?: { getByPair(clientId: string, pairId: string): Promise<{ pairId: string; encryptedShare: string }[]> };
  /** Step 1 asks it before Portal: while Vault refuses the workers' token, no pairs are made. */
  vaultAccess?: Pick<VaultAccessCheck, 'assertUsable'>;
  /** Keeps the user's backup from running while a recovery of the same user does. */
  runGuard?: Pick<UserRunGuard, 'assertNoRecoveryRunning'>;
  /** Looks for a custodian share that has not arrived yet before parking (delivery may lag). */
  maxCustodianWaitAttempts: number;
  /** How often a running activity heartbeats; keep well under the workflow's heartbeat timeout. */
  heartbeatIntervalMs: number;
  /** Clock skew allowed between us and Portal when telling this run's orphaned pairs apart. */
  orphanScanSkewMs: number;
  /**
   * Store attempts that may find a just-written ciphertext unreadable (404) before the backup parks
   * with CiphertextNotReadableError: replication lag is worth a few retries, a store that lost the
   * write is not worth retrying forever.
   */
  maxNotReadableAttempts: number;
}

export interface MpcBackupInput {
  userId: string;
}

export interface MpcBackupResult {
  /** The `/v1/backup` response, sealed to the workers (see ShareSealer). */
  sealedShares: SealedShares;
  pairIds: BackupPairIds;
  /** Self-Managed mode: the workflow checks the custodian shares are held before marking. */
  selfManaged?: boolean;
  /** Incomplete pairs Portal made for this user since step 1 was first scheduled, other than these. */
  orphanedPairIds: string[];
  /** Set when the orphan scan itself failed; the backup goes on regardless. */
  orphanScanError?: string;
}

export interface FindOrphanedPairsInput {
  userId: string;
  /** When step 1 was first scheduled (workflow time, ms since the epoch). */
  sinceMs: number;
}

export interface EncryptSharesInput {
  userId: string;
  sealedShares?: SealedShares;
  /** Plaintext shares, as step 1 returned them before sealing existed: only from runs started then. */
  shares?: BackupShares;
}

/** Step 2's result: the ciphertexts, and (from workers that make them) the receipt that step 3 checks. */
export type EncryptSharesResult = EncryptedShares & { receipt?: StepReceipt };

/** A result whose receipt the next step checks: STORE's and CHECK_CUSTODIAN's. */
export interface ReceiptResult {
  receipt: StepReceipt;
}

/**
 * What runs started before receipts send: no receipts, nothing checked (see docs/changing-workflows.md);
 * runs started since set `requireReceipts`, and every receipt named is then checked.
 */
export interface ReceiptRequirement {
  requireReceipts?: boolean;
}

export interface StoreCiphertextsInput extends ReceiptRequirement {
  userId: string;
  encrypted: EncryptSharesResult;
  /**
   * False when the workflow has run this step before (an operator's retry after a park starts a
   * new activity whose attempt is 1 again): the pairs may then hold ciphertexts already.
   */
  firstCall?: boolean;
}

export interface CheckCustodianSharesInput {
  userId: string;
  pairIds: BackupPairIds;
}

export interface MarkPairsStoredInput extends ReceiptRequirement {
  userId: string;
  pairIds: BackupPairIds;
  /** STORE's receipt, and CHECK_CUSTODIAN's in Self-Managed mode (the receipts themselves, not the results). */
  receipts?: { store?: unknown; custodian?: unknown };
}
