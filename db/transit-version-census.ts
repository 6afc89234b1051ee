import type { Pool } from 'pg';
import { ciphertextVersionSql } from '../adapters/kms/kms-ciphertext';
import { z } from 'zod';
import { classifyDatabaseError } from './postgres-error-classifier';
import { validateRows } from './validation';

/** Rows whose Transit ciphertext is below a key version, per table, with a few of their keys (ids only). */
export interface StaleCiphertextCount {
  count: number;
  /** Up to `sampleSize` (user or client, pair) ids of such rows, for the report. */
  sample: string[];
}

const countRow = z.object({ count: z.coerce.number().int().min(0) });
const sampleRow = z.object({ owner: z.string(), pair_id: z.string() });

/** The version in `vault:v<N>:…` or `awskms:e1:v<N>:…`; rows that are neither count as version 0 (stale). */
const VERSION_SQL = ciphertextVersionSql;

const TABLES = {
  clientCiphertexts: { table: 'client_ciphertexts', owner: 'user_id', column: 'ciphertext' },
  custodianShares: { table: 'custodian_shares', owner: 'client_id', column: 'encrypted_share' },
} as const;

/**
 * Counts the ciphertexts in the company's database that are still below a Transit key version:
 * before a key rotation raises min_decryption_version, every row must be on the new version, also
 * rows of users the rotation's user source did not list. Messages and samples carry ids only.
 */
export async function countBelowVersion(
  pool: Pool,
  which: keyof typeof TABLES,
  version: number,
  sampleSize = 10,
): Promise<StaleCiphertextCount> {
  const { table, owner, column } = TABLES[which];
  const operation = `count the rows of ${table} below key version ${version}`;
  try {
    const counted = await pool.query(`SELECT count(*) AS count FROM ${table} WHERE ${VERSION_SQL(column)} < $1`, [version]);
    const [row] = validateRows(countRow, counted.rows, operation);
    const count = row?.count ?? 0;
    if (count === 0 || sampleSize <= 0) return { count, sample: [] };
    const sampled = await pool.query(
      `SELECT ${owner} AS owner, pair_id FROM ${table} WHERE ${VERSION_SQL(column)} < $1 ORDER BY ${owner}, pair_id LIMIT $2`,
      [version, sampleSize],
    );
    return { count, sample: validateRows(sampleRow, sampled.rows, operation).map((r) => `${r.owner}/${r.pair_id}`) };
  } catch (error) {
    throw classifyDatabaseError(error, operation);
  }
}
