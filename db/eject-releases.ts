import type { Pool } from 'pg';
import { z } from 'zod';
import { classifyDatabaseError } from './postgres-error-classifier';
import { databaseId, validateArguments, validateRows } from './validation';

/** One release of an eject run: who asked, who approved, the pairs, and the text sealed to the requester. */
export interface EjectRelease {
  workflowId: string;
  runId: string;
  userId: string;
  pairIds: string[];
  /** The store whose copy was released. */
  store: string;
  requestedBy: string;
  approvedBy: string[];
  /** The JWE sealed to the requester's one-time key; absent once collected or expired. */
  sealed?: string;
  releasedAt: Date;
  expiresAt: Date;
  collectedAt?: Date;
}

/** What a release is put with; the share_retrievals row is written in the same statement. */
export interface NewEjectRelease extends Omit<EjectRelease, 'releasedAt' | 'collectedAt' | 'sealed'> {
  sealed: string;
  reason: string;
}

const releaseArguments = z.object({
  workflowId: databaseId,
  runId: databaseId,
  userId: databaseId,
  pairIds: z.array(databaseId).min(1).max(16),
  store: z.string().min(1).max(64),
  requestedBy: z.string().min(1).max(64),
  approvedBy: z.array(z.string().min(1).max(64)).min(1).max(16),
  sealed: z.string().min(1).max(65_536),
  reason: z.string().trim().min(1).max(1000),
  expiresAt: z.date(),
});

const runArguments = z.object({ workflowId: databaseId, runId: databaseId });

const releaseRow = z.object({
  workflow_id: z.string(),
  run_id: z.string(),
  user_id: z.string(),
  pair_ids: z.array(z.string()),
  store: z.string(),
  requested_by: z.string(),
  approved_by: z.array(z.string()),
  sealed: z.string().nullable(),
  released_at: z.date(),
  expires_at: z.date(),
  collected_at: z.date().nullable(),
});

const COLUMNS = 'workflow_id, run_id, user_id, pair_ids, store, requested_by, approved_by, sealed, released_at, expires_at, collected_at';

/**
 * The eject_releases table (db/migrations/007): a worker puts one sealed release per eject run, the
 * requester's CLI collects it once. Every release is also a `released` row of share_retrievals,
 * written in the same statement, so neither exists without the other.
 */
export class EjectReleases {
  constructor(private readonly pool: Pool) {}

  /** The run's release, if one was put (a retried release activity finds it and does nothing). */
  async find(workflowId: string, runId: string): Promise<EjectRelease | undefined> {
    const operation = `read the eject release of ${workflowId}`;
    validateArguments(runArguments, { workflowId, runId }, operation);
    const rows = await this.query(operation, `SELECT ${COLUMNS} FROM eject_releases WHERE workflow_id = $1 AND run_id = $2`, [workflowId, runId]);
    return validateRows(releaseRow, rows, operation).map(toRelease)[0];
  }

  /** The user's newest release (the one `eject collect` opens). */
  async newestForUser(userId: string): Promise<EjectRelease | undefined> {
    const operation = `read the newest eject release of user ${userId}`;
    validateArguments(z.object({ userId: databaseId }), { userId }, operation);
    const rows = await this.query(operation, `SELECT ${COLUMNS} FROM eject_releases WHERE user_id = $1 ORDER BY released_at DESC LIMIT 1`, [userId]);
    return validateRows(releaseRow, rows, operation).map(toRelease)[0];
  }

  /** Puts the run's release once (with its share_retrievals row); expired releases lose their sealed text. */
  async put(release: NewEjectRelease): Promise<void> {
    const operation = `record the eject release of user ${release.userId}`;
    const input = validateArguments(releaseArguments, release, operation);
    await this.query(operation, 'UPDATE eject_releases SET sealed = NULL WHERE sealed IS NOT NULL AND expires_at < now()', []);
    await this.query(
      operation,
      `WITH release AS (
         INSERT INTO eject_releases (workflow_id, run_id, user_id, pair_ids, requested_by, approved_by, sealed, expires_at, store)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11)
         ON CONFLICT (workflow_id, run_id) DO NOTHING
         RETURNING user_id
       )
       INSERT INTO share_retrievals (user_id, pair_ids, requested_by, reason, outcome, detail)
       SELECT user_id, $4, $5, $9, 'released', $10 FROM release`,
      [input.workflowId, input.runId, input.userId, input.pairIds, input.requestedBy, input.approvedBy, input.sealed, input.expiresAt, input.reason, `approved by ${input.approvedBy.join(', ')} (${input.workflowId}/${input.runId})`, input.store],
    );
  }

  /** Empties a collected release: its sealed text can be collected once. */
  async markCollected(workflowId: string, runId: string): Promise<void> {
    const operation = `mark the eject release of ${workflowId} collected`;
    validateArguments(runArguments, { workflowId, runId }, operation);
    await this.query(operation, 'UPDATE eject_releases SET sealed = NULL, collected_at = now() WHERE workflow_id = $1 AND run_id = $2 AND collected_at IS NULL', [workflowId, runId]);
  }

  private async query(operation: string, text: string, values: unknown[]): Promise<unknown[]> {
    try {
      return (await this.pool.query(text, values)).rows;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }
}

function toRelease(row: z.infer<typeof releaseRow>): EjectRelease {
  return {
    workflowId: row.workflow_id,
    runId: row.run_id,
    userId: row.user_id,
    pairIds: row.pair_ids,
    store: row.store,
    requestedBy: row.requested_by,
    approvedBy: row.approved_by,
    ...(row.sealed !== null ? { sealed: row.sealed } : {}),
    releasedAt: row.released_at,
    expiresAt: row.expires_at,
    ...(row.collected_at !== null ? { collectedAt: row.collected_at } : {}),
  };
}
