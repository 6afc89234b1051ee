import type { Pool, PoolClient } from 'pg';
import { z } from 'zod';
import { AUDIT_EVENT_KINDS, SECRET_DETAIL_KEY, type AuditDetailValue, type AuditEvent, type AuditEventInput } from '../contracts/audit-events';
import { auditRowHash, canonicalJson, GENESIS_HASH, type AuditChainRow, type AuditSeal } from './audit-chain';
import { DatabaseRequestError } from './errors';
import { classifyDatabaseError } from './postgres-error-classifier';
import { databaseId, validateArguments, validateRows } from './validation';

/**
 * The advisory lock every append takes (with the schema the table is in as its second key), so two
 * appends to one chain never read the same head: the chain never forks.
 */
export const AUDIT_APPEND_LOCK = 727_365_021;
export const AUDIT_APPEND_LOCK_SQL = `SELECT pg_advisory_xact_lock(${AUDIT_APPEND_LOCK}, hashtext(current_schema()))`;
/** The longest details text an event may carry. */
const MAX_DETAILS_CHARS = 8_000;

const text = (max: number) => z.string().min(1).max(max).refine((value) => !value.includes('\u0000'), 'must not contain a NUL character');

const eventArguments = z.object({
  eventId: text(512),
  kind: z.enum(AUDIT_EVENT_KINDS),
  actor: text(256),
  userId: databaseId.optional(),
  subject: text(512),
  details: z.record(z.string(), z.unknown()).refine((details) => secretKeyIn(details) === undefined, {
    message: 'details must not carry a share, token, API key, password or secret (a key names one)',
  }),
});

const chainRow = z.object({
  seq: z.coerce.number().int().positive(),
  event_id: z.string(),
  kind: z.string(),
  actor: z.string(),
  user_id: z.string().nullable(),
  subject: z.string(),
  details: z.string(),
  at: z.date(),
  prev_hash: z.string(),
  hash: z.string(),
});

const sealRow = z.object({
  id: z.coerce.number().int().positive(),
  seq: z.coerce.number().int().positive(),
  head_hash: z.string(),
  signed_at: z.string(),
  key_name: z.string(),
  signature: z.string(),
});

/** What appending answered: the row's position, and whether it was there already (a retried append). */
export interface AppendOutcome {
  seq: number;
  alreadyRecorded: boolean;
}

export interface AuditListFilter {
  userId?: string;
  since?: Date;
  limit?: number;
}

/**
 * The audit_events and audit_seals tables. Appends are serialised by an advisory lock held for
 * the transaction: the head is read, the new row hashed onto it and inserted, all while no other
 * append can run, so seq has no gaps and the chain one line. An event id already in the chain is
 * not appended again (an activity retried after its first append committed).
 */
export class AuditTrail {
  constructor(private readonly pool: Pool) {}

  async append(event: AuditEventInput): Promise<AppendOutcome> {
    const operation = `append audit event ${event.kind}`;
    const input = validateArguments(eventArguments, event, operation);
    const details = canonicalJson(input.details as AuditDetailValue);
    if (details.length > MAX_DETAILS_CHARS) throw new DatabaseRequestError(`${operation}: invalid arguments (details: longer than ${MAX_DETAILS_CHARS} characters as JSON)`);
    return this.inTransaction(operation, async (client) => {
      await client.query(AUDIT_APPEND_LOCK_SQL);
      const existing = await client.query<{ seq: string }>('SELECT seq FROM audit_events WHERE event_id = $1', [input.eventId]);
      if (existing.rows[0]) return { seq: Number(existing.rows[0].seq), alreadyRecorded: true };
      const head = await client.query<{ seq: string; hash: string }>('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
      const seq = head.rows[0] ? Number(head.rows[0].seq) + 1 : 1;
      const row = {
        eventId: input.eventId,
        kind: input.kind,
        actor: input.actor,
        userId: input.userId ?? null,
        subject: input.subject,
        details,
        at: new Date().toISOString(),
        prevHash: head.rows[0]?.hash ?? GENESIS_HASH,
      };
      await client.query(
        `INSERT INTO audit_events (seq, event_id, kind, actor, user_id, subject, details, at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [seq, row.eventId, row.kind, row.actor, row.userId, row.subject, row.details, row.at, row.prevHash, auditRowHash(row)],
      );
      return { seq, alreadyRecorded: false };
    });
  }

  /** Every row in chain order (the verifier's walk). */
  async chain(): Promise<AuditChainRow[]> {
    const rows = await this.select('read the audit chain', 'SELECT * FROM audit_events ORDER BY seq', []);
    return validateRows(chainRow, rows, 'read the audit chain').map(toChainRow);
  }

  /** The newest row, if any: what the sealer signs. */
  async head(): Promise<AuditChainRow | undefined> {
    const rows = await this.select('read the audit chain head', 'SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1', []);
    return validateRows(chainRow, rows, 'read the audit chain head').map(toChainRow)[0];
  }

  /** Events, oldest first, of one user and/or since a time. */
  async list(filter: AuditListFilter = {}): Promise<AuditEvent[]> {
    const operation = 'list audit events';
    validateArguments(z.object({ userId: databaseId.optional(), limit: z.number().int().min(1).max(100_000).optional() }), filter, operation);
    const rows = await this.select(
      operation,
      `SELECT * FROM audit_events WHERE ($1::text IS NULL OR user_id = $1) AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY seq LIMIT $3`,
      [filter.userId ?? null, filter.since?.toISOString() ?? null, filter.limit ?? 1_000],
    );
    return validateRows(chainRow, rows, operation).map((row) => toEvent(toChainRow(row)));
  }

  async seals(): Promise<AuditSeal[]> {
    const rows = await this.select('read the audit seals', 'SELECT * FROM audit_seals ORDER BY seq, id', []);
    return validateRows(sealRow, rows, 'read the audit seals').map((row) => ({
      id: row.id,
      seq: row.seq,
      headHash: row.head_hash,
      signedAt: row.signed_at,
      keyName: row.key_name,
      signature: row.signature,
    }));
  }

  /** The newest seal's position (0 when there is none). */
  async sealedSeq(): Promise<number> {
    const rows = await this.select('read the newest audit seal', 'SELECT COALESCE(MAX(seq), 0) AS seq FROM audit_seals', []);
    return Number((rows[0] as { seq: string }).seq);
  }

  async addSeal(seal: Omit<AuditSeal, 'id'>): Promise<void> {
    const operation = `record the audit seal of row ${seal.seq}`;
    try {
      await this.pool.query('INSERT INTO audit_seals (seq, head_hash, signed_at, key_name, signature) VALUES ($1, $2, $3, $4, $5)', [
        seal.seq,
        seal.headHash,
        seal.signedAt,
        seal.keyName,
        seal.signature,
      ]);
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  private async select(operation: string, sql: string, values: unknown[]): Promise<unknown[]> {
    try {
      return (await this.pool.query(sql, values)).rows;
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
  }

  private async inTransaction<T>(operation: string, body: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw classifyDatabaseError(error, operation);
    }
    try {
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw classifyDatabaseError(error, operation);
    } finally {
      client.release();
    }
  }
}

/** The first key (at any depth) that names a secret, if any. */
export function secretKeyIn(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, inner] of Object.entries(value)) {
    if (!Array.isArray(value) && SECRET_DETAIL_KEY.test(key)) return key;
    const nested = secretKeyIn(inner);
    if (nested !== undefined) return nested;
  }
  return undefined;
}

function toChainRow(row: z.infer<typeof chainRow>): AuditChainRow {
  return {
    seq: row.seq,
    eventId: row.event_id,
    kind: row.kind,
    actor: row.actor,
    userId: row.user_id,
    subject: row.subject,
    details: row.details,
    at: row.at.toISOString(),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function toEvent(row: AuditChainRow): AuditEvent {
  return {
    seq: row.seq,
    eventId: row.eventId,
    kind: row.kind as AuditEvent['kind'],
    actor: row.actor,
    ...(row.userId !== null ? { userId: row.userId } : {}),
    subject: row.subject,
    details: JSON.parse(row.details) as AuditEvent['details'],
    at: row.at,
    prevHash: row.prevHash,
    hash: row.hash,
  };
}
