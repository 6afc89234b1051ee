import { KMS_CIPHERTEXT } from '../adapters/kms/kms-ciphertext';
import type { Pool } from 'pg';
import { z } from 'zod';
import { DatabaseUnavailableError } from './errors';
import { classifyDatabaseError } from './postgres-error-classifier';
import { PUT_ONCE_OUTCOMES, type PutOnceOutcome } from './put-once-outcome';
import { databaseId, validateArguments, validateRows } from './validation';

/** One custodian share as Portal delivered it, already encrypted with Vault Transit. */
export interface NewCustodianShare {
  clientId: string;
  /** Verbatim from Portal (e.g. GDRIVE, PASSWORD, UNKNOWN). */
  backupMethod: string;
  pairId: string;
  /** The KMS ciphertext (`vault:vN:…`, `awskms:e1:vN:…`) of the share string. */
  encryptedShare: string;
  /** Lower-case hex SHA-256 of the exact share string Portal sent. */
  shareSha256: string;
}

export interface StoredCustodianShare {
  backupMethod: string;
  pairId: string;
  encryptedShare: string;
  shareSha256: string;
  receivedAt: Date;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Same rule as the table's CHECK: only a Transit ciphertext, so a plaintext share is refused here first. */
const TRANSIT_CIPHERTEXT = KMS_CIPHERTEXT;

const shareArguments = z.object({
  clientId: databaseId,
  backupMethod: z.string().min(1).max(128),
  pairId: databaseId,
  encryptedShare: z.string().max(1_000_000).regex(TRANSIT_CIPHERTEXT, 'must be a KMS ciphertext (vault:vN:… or awskms:e1:vN:…)'),
  shareSha256: z.string().regex(SHA256_HEX, 'must be 64 lower-case hex characters'),
});
const clientArguments = z.object({ clientId: databaseId });
const pairArguments = clientArguments.extend({ pairId: databaseId });
const transitCiphertext = z.string().max(1_000_000).regex(TRANSIT_CIPHERTEXT, 'must be a KMS ciphertext (vault:vN:… or awskms:e1:vN:…)');
const replaceArguments = pairArguments.extend({
  backupMethod: z.string().min(1).max(128),
  expectedOld: transitCiphertext,
  next: transitCiphertext,
});

const outcomeRow = z.object({ outcome: z.enum(PUT_ONCE_OUTCOMES) });
const shareRow = z.object({
  backup_method: z.string().min(1),
  pair_id: z.string().min(1),
  encrypted_share: z.string().regex(TRANSIT_CIPHERTEXT, 'must be a KMS ciphertext'),
  share_sha256: z.string().regex(SHA256_HEX, 'must be 64 lower-case hex characters'),
  received_at: z.date(),
});

/** As in ClientCiphertextRepository: insert, or compare with the stored row, in one statement. */
const PUT_ONCE_SQL = `
  WITH inserted AS (
    INSERT INTO custodian_shares (client_id, backup_method, pair_id, encrypted_share, share_sha256)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (client_id, backup_method, pair_id) DO NOTHING
    RETURNING 1
  )
  SELECT 'inserted' AS outcome FROM inserted
  UNION ALL
  SELECT CASE WHEN existing.share_sha256 = $5 THEN 'unchanged' ELSE 'conflict' END AS outcome
    FROM custodian_shares existing
   WHERE existing.client_id = $1 AND existing.backup_method = $2 AND existing.pair_id = $3
     AND NOT EXISTS (SELECT 1 FROM inserted)`;

const SELECT_COLUMNS = 'backup_method, pair_id, encrypted_share, share_sha256, received_at';

/**
 * The custodian backup shares Portal delivered to the webhook (Self-Managed), encrypted, one per
 * (client, backup method, pair). A repeated delivery is recognised by the share's SHA-256 (each
 * Transit encryption differs) and keeps the first row. Messages name client and pair ids only.
 */
export class CustodianShareRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Stores the share unless (client, backup method, pair) already has one: `unchanged` if that one
   * has the same SHA-256, `conflict` (nothing overwritten) if not. Resolves only after the commit.
   */
  async putOnce(share: NewCustodianShare): Promise<PutOnceOutcome> {
    const operation = `store the custodian share of client ${share.clientId}, pair ${share.pairId}`;
    const input = validateArguments(shareArguments, share, operation);
    try {
      const result = await this.pool.query(PUT_ONCE_SQL, [
        input.clientId,
        input.backupMethod,
        input.pairId,
        input.encryptedShare,
        input.shareSha256,
      ]);
      const [row] = validateRows(outcomeRow, result.rows, operation);
      if (row) return row.outcome;
      // Lost a race with a concurrent delivery of the same share: compare with what it committed.
      const stored = (await this.getByPair(input.clientId, input.pairId)).find((entry) => entry.backupMethod === input.backupMethod);
      if (!stored) throw new DatabaseUnavailableError(`${operation}: the row changed concurrently; try again`);
      return stored.shareSha256 === input.shareSha256 ? 'unchanged' : 'conflict';
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  /**
   * Replaces the encrypted share of (client, backup method, pair) with `next` only if it is still
   * `expectedOld`: a key-rotation rewrap (same share, newer key version) as a compare-and-set, so a
   * concurrent change is never overwritten. The share's SHA-256 stays: the share is the same.
   * True if replaced; false if there is no such row or it holds another ciphertext.
   */
  async replaceIfUnchanged(clientId: string, backupMethod: string, pairId: string, expectedOld: string, next: string): Promise<boolean> {
    const operation = `replace the custodian share of client ${clientId}, pair ${pairId}`;
    validateArguments(replaceArguments, { clientId, backupMethod, pairId, expectedOld, next }, operation);
    try {
      const result = await this.pool.query(
        `UPDATE custodian_shares SET encrypted_share = $5, updated_at = now()
          WHERE client_id = $1 AND backup_method = $2 AND pair_id = $3 AND encrypted_share = $4`,
        [clientId, backupMethod, pairId, expectedOld, next],
      );
      return result.rowCount === 1;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  /** Every share held for the client, in the order received. */
  async listByClient(clientId: string): Promise<StoredCustodianShare[]> {
    const operation = `list the custodian shares of client ${clientId}`;
    validateArguments(clientArguments, { clientId }, operation);
    return this.select(
      `SELECT ${SELECT_COLUMNS} FROM custodian_shares WHERE client_id = $1 ORDER BY received_at, pair_id, backup_method`,
      [clientId],
      operation,
    );
  }

  /** The shares held for one pair of the client: usually one, more if Portal sent it under several backup methods. */
  async getByPair(clientId: string, pairId: string): Promise<StoredCustodianShare[]> {
    const operation = `read the custodian share of client ${clientId}, pair ${pairId}`;
    validateArguments(pairArguments, { clientId, pairId }, operation);
    return this.select(
      `SELECT ${SELECT_COLUMNS} FROM custodian_shares WHERE client_id = $1 AND pair_id = $2 ORDER BY received_at, backup_method`,
      [clientId, pairId],
      operation,
    );
  }

  private async select(sql: string, values: string[], operation: string): Promise<StoredCustodianShare[]> {
    try {
      const result = await this.pool.query(sql, values);
      return validateRows(shareRow, result.rows, operation).map((row) => ({
        backupMethod: row.backup_method,
        pairId: row.pair_id,
        encryptedShare: row.encrypted_share,
        shareSha256: row.share_sha256,
        receivedAt: row.received_at,
      }));
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }
}
