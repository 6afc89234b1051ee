import type { BackupPairIds, SealedShares } from '../../domain/backup-types';
import type { Curve } from '../../domain/curves';
import type { StepReceipt } from '../../domain/step-receipt';
import type { StoreCopiesDeps } from '../../adapters/stores/ciphertext-copies';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient } from '../../adapters/portal/portal-client';
import type { ShareSealer } from '../../adapters/sealing/share-sealer';
import type { SigningShareHandover } from '../../adapters/http/signing-share-handover';
import type { KmsProvider } from '../../adapters/kms/kms-provider';
import type { StepReceipts } from '../step-receipts';
import type { UserRunGuard } from '../user-run-guard';

/** What the recovery's steps use; each takes only its part. */
export interface RecoveryActivityDeps extends StoreCopiesDeps {
  credentials: CredentialsSource;
  portal: Pick<PortalClient, 'getClient' | 'recover' | 'markSigningPairsStored'>;
  transit: Pick<KmsProvider, 'decryptEach'>;
  sealer: ShareSealer;
  /** Proves DECRYPT's and HAND_OVER's results came from a worker of the run (see StepReceipts). */
  receipts: StepReceipts;
  /** The company's backend route for new signing shares (SIGNING_SHARES_URL); recovery refuses to start without it. */
  handover?: SigningShareHandover;
  runGuard: UserRunGuard;
  heartbeatIntervalMs: number;
  /** Clock skew allowed between us and Portal when telling a lost call's signing pairs apart. */
  orphanScanSkewMs: number;
}

export interface FoundBackup {
  backupPairIds: BackupPairIds;
  /** KMS ciphertexts as stored: opaque to every holder of the payload codec key. */
  ciphertexts: Record<Curve, string>;
  /** The store whose copy this is (CIPHERTEXT_STORES: the first copy that verified); absent in results recorded before copies. */
  store?: string;
  /** Copies tried before it that did not verify, each named by its store and why. */
  skippedCopies?: string[];
}

/** DECRYPT's result: the rebuilt `/v1/backup` response, sealed, with the receipt RECOVER checks. */
export type DecryptedBackup = SealedShares & { receipt?: StepReceipt };

export interface RecoveredAtPortal {
  /** The `/v1/recover` response (new signing shares), sealed to the workers while in history. */
  sealedSigningShares: SealedShares;
  signingPairIds: BackupPairIds;
  /** Incomplete signing pairs made since the step was first scheduled by attempts whose answers were lost. */
  orphanedSigningPairIds: string[];
  orphanScanError?: string;
}

/** Runs started since receipts set `requireReceipts` and pass the backup's pairs; older runs pass neither. */
export interface RecoverAtPortalInput {
  userId: string;
  sealedBackup: DecryptedBackup;
  backupPairIds?: BackupPairIds;
  requireReceipts?: boolean;
}

export interface MarkSigningPairsInput {
  userId: string;
  signingPairIds: BackupPairIds;
  /** HAND_OVER's receipt, from runs started since receipts. */
  handOver?: unknown;
  requireReceipts?: boolean;
}
