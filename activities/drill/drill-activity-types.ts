import type { DrillMetrics } from '../../metrics/service-metrics';
import type { StepReceipts } from '../step-receipts';
import type { StoreCopiesDeps } from '../../adapters/stores/ciphertext-copies';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClientInfo } from '../../adapters/portal/portal-client';
import type { DecryptItem } from '../../adapters/kms/kms-provider';

/** What the drill reads through; nothing here can call /v1/recover, write a store or mark a pair. */
export interface DrillActivityDeps extends StoreCopiesDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: { getClient(clientApiKey: string): Promise<PortalClientInfo> };
  transit: { decryptEach(items: DecryptItem[]): Promise<({ plaintext: Buffer } | { error: string })[]> };
  /** Self-Managed mode: every pair's custodian share must be held and decrypt. */
  selfManaged: boolean;
  /** The custodian shares the webhook committed (Self-Managed mode only). */
  custodianShares?: {
    getByPair(clientId: string, pairId: string): Promise<{ pairId: string; encryptedShare: string; shareSha256: string }[]>;
  };
  heartbeatIntervalMs: number;
  /** Each verdict carries a receipt (DRILL_VERDICT) the drill checks before it counts it. */
  receipts: StepReceipts;
  /** Users checked, by outcome and failure kind (none when absent). */
  drillMetrics?: DrillMetrics;
}

export interface CheckDrillUsersInput {
  userIds: string[];
  /** From this attempt on, a user that still cannot be checked for a transient reason is reported inconclusive. */
  inconclusiveAfterAttempts: number;
}

export interface CheckDrillUsersInput {
  userIds: string[];
  /** From this attempt on, a user that still cannot be checked for a transient reason is reported inconclusive. */
  inconclusiveAfterAttempts: number;
}
