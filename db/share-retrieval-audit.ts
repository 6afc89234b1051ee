import type { Pool } from 'pg';
import { z } from 'zod';
import { classifyDatabaseError } from './postgres-error-classifier';
import { databaseId, validateArguments, validateRows } from './validation';

/** One eject retrieval, as the audit keeps it: ids and identities only. */
export interface ShareRetrievalRecord {
  userId: string;
  pairIds: string[];
  /** The caller's Vault identity (its token's display name). */
  requestedBy: string;
  vaultEntity?: string;
  reason: string;
  outcome: 'released' | 'refused';
  detail?: string;
}

export interface StoredShareRetrieval extends ShareRetrievalRecord {
  id: string;
  at: Date;
}

const recordArguments = z.object({
  userId: databaseId,
  pairIds: z.array(databaseId).max(16),
  requestedBy: z.string().min(1).max(512),
  vaultEntity: z.string().max(256).optional(),
  reason: z.string().trim().min(1).max(1000),
  outcome: z.enum(['released', 'refused']),
  detail: z.string().max(2000).optional(),
});

const retrievalRow = z.object({
  id: z.string(),
  user_id: z.string(),
  pair_ids: z.array(z.string()),
  requested_by: z.string(),
  vault_entity: z.string().nullable(),
  reason: z.string(),
  outcome: z.enum(['released', 'refused']),
  detail: z.string().nullable(),
  at: z.date(),
});

/** The share_retrievals table: insert-only audit of eject retrievals. */
export class ShareRetrievalAudit {
  constructor(private readonly pool: Pool) {}

  /** Records a retrieval; resolves only once committed (shares are released only after this). */
  async record(entry: ShareRetrievalRecord): Promise<void> {
    const operation = `record the share retrieval for user ${entry.userId}`;
    const input = validateArguments(recordArguments, entry, operation);
    try {
      await this.pool.query(
        `INSERT INTO share_retrievals (user_id, pair_ids, requested_by, vault_entity, reason, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [input.userId, input.pairIds, input.requestedBy, input.vaultEntity ?? null, input.reason, input.outcome, input.detail ?? null],
      );
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  async listByUser(userId: string): Promise<StoredShareRetrieval[]> {
    const operation = `list the share retrievals of user ${userId}`;
    validateArguments(z.object({ userId: databaseId }), { userId }, operation);
    let rows: unknown[];
    try {
      rows = (await this.pool.query('SELECT id::text AS id, user_id, pair_ids, requested_by, vault_entity, reason, outcome, detail, at FROM share_retrievals WHERE user_id = $1 ORDER BY at, id', [userId])).rows;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
    return validateRows(retrievalRow, rows, operation).map((row) => ({
      id: row.id,
      userId: row.user_id,
      pairIds: row.pair_ids,
      requestedBy: row.requested_by,
      ...(row.vault_entity ? { vaultEntity: row.vault_entity } : {}),
      reason: row.reason,
      outcome: row.outcome,
      ...(row.detail ? { detail: row.detail } : {}),
      at: row.at,
    }));
  }
}
