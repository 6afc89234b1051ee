import type { Pool } from 'pg';
import { z } from 'zod';
import { DatabaseUnavailableError } from './errors';
import { classifyDatabaseError } from './postgres-error-classifier';
import { PUT_ONCE_OUTCOMES, type PutOnceOutcome } from './put-once-outcome';
import { databaseId, validateArguments, validateRows } from './validation';

export interface StoredClientCiphertext {
  pairId: string;
  ciphertext: string;
  createdAt: Date;
}

/** A Transit ciphertext as stored: non-empty, bounded (a share's ciphertext is a few kB). */
const ciphertextValue = z.string().min(1).max(1_000_000);

const keyArguments = z.object({ userId: databaseId, pairId: databaseId });
const putArguments = keyArguments.extend({ ciphertext: ciphertextValue });
const replaceArguments = keyArguments.extend({ expectedOld: ciphertextValue, next: ciphertextValue });

const outcomeRow = z.object({ outcome: z.enum(PUT_ONCE_OUTCOMES) });
const ciphertextRow = z.object({ ciphertext: z.string() });
const listedRow = z.object({ pair_id: z.string(), ciphertext: z.string(), created_at: z.date() });

/**
 * Inserts, or — when the key is taken — says whether the stored ciphertext is the same, in one
 * statement. Its final SELECT sees the table as of the statement's start, so if a concurrent
 * transaction committed the row while this INSERT waited on it, no row comes back; the caller
 * then reads the row in a second statement.
 */
const PUT_ONCE_SQL = `
  WITH inserted AS (
    INSERT INTO client_ciphertexts (user_id, pair_id, ciphertext)
    VALUES ($1, $2, $3)
    ON CONFLICT (user_id, pair_id) DO NOTHING
    RETURNING 1
  )
  SELECT 'inserted' AS outcome FROM inserted
  UNION ALL
  SELECT CASE WHEN existing.ciphertext = $3 THEN 'unchanged' ELSE 'conflict' END AS outcome
    FROM client_ciphertexts existing
   WHERE existing.user_id = $1 AND existing.pair_id = $2
     AND NOT EXISTS (SELECT 1 FROM inserted)`;

/**
 * The encrypted client backup shares in the company's PostgreSQL (table client_ciphertexts), one
 * per (user, pair), written once. Every failure is a `DatabaseUnavailableError` (retry) or a
 * `DatabaseRequestError` (do not); messages name the user and pair, never a ciphertext.
 */
export class ClientCiphertextRepository {
  constructor(private readonly pool: Pool) {}

  /** Stores the ciphertext unless the pair already has one; never overwrites (see PutOnceOutcome). */
  async putOnce(userId: string, pairId: string, ciphertext: string): Promise<PutOnceOutcome> {
    const operation = `store the client ciphertext of user ${userId}, pair ${pairId}`;
    validateArguments(putArguments, { userId, pairId, ciphertext }, operation);
    try {
      const result = await this.pool.query(PUT_ONCE_SQL, [userId, pairId, ciphertext]);
      const [row] = validateRows(outcomeRow, result.rows, operation);
      if (row) return row.outcome;
      // Lost a race with a concurrent insert of the same pair (see PUT_ONCE_SQL): compare now.
      const stored = await this.get(userId, pairId);
      if (stored === undefined) throw new DatabaseUnavailableError(`${operation}: the row changed concurrently; try again`);
      return stored === ciphertext ? 'unchanged' : 'conflict';
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  /** The ciphertext stored for the pair, or undefined when there is none. */
  async get(userId: string, pairId: string): Promise<string | undefined> {
    const operation = `read the client ciphertext of user ${userId}, pair ${pairId}`;
    validateArguments(keyArguments, { userId, pairId }, operation);
    try {
      const result = await this.pool.query('SELECT ciphertext FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [
        userId,
        pairId,
      ]);
      return validateRows(ciphertextRow, result.rows, operation)[0]?.ciphertext;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  /** Every ciphertext stored for the user, oldest first. */
  async listByUser(userId: string): Promise<StoredClientCiphertext[]> {
    const operation = `list the client ciphertexts of user ${userId}`;
    validateArguments(keyArguments.pick({ userId: true }), { userId }, operation);
    try {
      const result = await this.pool.query(
        'SELECT pair_id, ciphertext, created_at FROM client_ciphertexts WHERE user_id = $1 ORDER BY created_at, pair_id',
        [userId],
      );
      return validateRows(listedRow, result.rows, operation).map((row) => ({
        pairId: row.pair_id,
        ciphertext: row.ciphertext,
        createdAt: row.created_at,
      }));
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  /**
   * Replaces the pair's ciphertext with `next` only if it is still `expectedOld` (a key-rotation
   * rewrap: a compare-and-set, so a concurrent change is never overwritten). True if replaced;
   * false if the pair has no ciphertext or a different one.
   */
  async replaceIfUnchanged(userId: string, pairId: string, expectedOld: string, next: string): Promise<boolean> {
    const operation = `replace the client ciphertext of user ${userId}, pair ${pairId}`;
    validateArguments(replaceArguments, { userId, pairId, expectedOld, next }, operation);
    try {
      const result = await this.pool.query(
        'UPDATE client_ciphertexts SET ciphertext = $4 WHERE user_id = $1 AND pair_id = $2 AND ciphertext = $3',
        [userId, pairId, expectedOld, next],
      );
      return result.rowCount === 1;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }
}
