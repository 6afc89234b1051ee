import type pino from 'pino';
import type { DecryptItem, EncryptItem } from '../adapters/vault/vault-transit';
import type { WebhookMetrics } from '../metrics/service-metrics';

/** The rows the webhook keeps: one per (client, backup method, pair), the share encrypted. */
export interface CustodianShareRecords {
  putOnce(row: { clientId: string; backupMethod: string; pairId: string; encryptedShare: string; shareSha256: string }): Promise<'inserted' | 'unchanged' | 'conflict'>;
  listByClient(clientId: string): Promise<{ backupMethod: string; pairId: string; encryptedShare: string }[]>;
}

/** The Transit calls the webhook makes (VaultTransit has both). */
export interface ShareEncryption {
  encryptBatch(items: EncryptItem[]): Promise<string[]>;
  decryptBatch(items: DecryptItem[]): Promise<Buffer[]>;
}

export interface WebhookServerDeps {
  records: CustodianShareRecords;
  transit: ShareEncryption;
  /** Accepted X-Webhook-Secret values (two during a rotation). */
  secrets: readonly string[];
  /** When set, only these source addresses are served (Portal's documented ones in production). */
  allowedSourceIps?: readonly string[];
  /** Whole-request budget; Portal gives up after 10 s, so this stays under it. */
  deadlineMs: number;
  bodyLimitBytes: number;
  logger: pino.Logger;
  /** Deliveries by outcome, requests by route template and status class (none when absent). */
  metrics?: WebhookMetrics;
}
