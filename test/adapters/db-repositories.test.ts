import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import { CustodianShareRepository, type NewCustodianShare } from '../../db/custodian-share-repository';
import { DatabaseRequestError } from '../../db/errors';
import { createDatabasePool } from '../../db/pool';
import { classifyDatabaseError } from '../../db/postgres-error-classifier';
import { validateRows } from '../../db/validation';

// The migrated database of the global setup; every id below is unique to this run, so other test
// files using the same database do not see these rows, nor these tests theirs.
let pool: Pool;
const run = randomBytes(4).toString('hex');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The error a promise rejects with; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`);
    },
    (error: unknown) => error as Error,
  );
}

beforeAll(() => {
  pool = createDatabasePool(inject('databaseUrl'), { max: 12 });
});
afterAll(() => pool?.end());

describe('ClientCiphertextRepository', () => {
  it('putOnce: inserted, then unchanged for the same ciphertext, conflict for another (first one kept)', async () => {
    const repo = new ClientCiphertextRepository(pool);
    const userId = `user-${run}-a`;
    expect(await repo.putOnce(userId, 'pair-1', 'vault:v1:first')).toBe('inserted');
    expect(await repo.putOnce(userId, 'pair-1', 'vault:v1:first')).toBe('unchanged');
    expect(await repo.putOnce(userId, 'pair-1', 'vault:v1:second')).toBe('conflict');
    expect(await repo.get(userId, 'pair-1')).toBe('vault:v1:first');
    expect(await repo.get(userId, 'no-such-pair')).toBeUndefined();
  });

  it('listByUser returns exactly that user’s ciphertexts', async () => {
    const repo = new ClientCiphertextRepository(pool);
    const userId = `user-${run}-b`;
    await repo.putOnce(userId, 'pair-1', 'vault:v1:one');
    await repo.putOnce(userId, 'pair-2', 'vault:v1:two');
    await repo.putOnce(`user-${run}-other`, 'pair-1', 'vault:v1:not-mine');
    const rows = await repo.listByUser(userId);
    expect(rows.map(({ pairId, ciphertext }) => ({ pairId, ciphertext })).sort((a, b) => a.pairId.localeCompare(b.pairId))).toEqual([
      { pairId: 'pair-1', ciphertext: 'vault:v1:one' },
      { pairId: 'pair-2', ciphertext: 'vault:v1:two' },
    ]);
    expect(rows.every((row) => row.createdAt instanceof Date)).toBe(true);
    expect(await repo.listByUser(`user-${run}-nobody`)).toEqual([]);
  });

  it('replaceIfUnchanged swaps only when the stored ciphertext is still the expected one', async () => {
    const repo = new ClientCiphertextRepository(pool);
    const userId = `user-${run}-c`;
    await repo.putOnce(userId, 'pair-1', 'vault:v1:old');
    expect(await repo.replaceIfUnchanged(userId, 'pair-1', 'vault:v1:not-the-stored-one', 'vault:v2:new')).toBe(false);
    expect(await repo.get(userId, 'pair-1')).toBe('vault:v1:old');
    expect(await repo.replaceIfUnchanged(userId, 'pair-1', 'vault:v1:old', 'vault:v2:new')).toBe(true);
    expect(await repo.get(userId, 'pair-1')).toBe('vault:v2:new');
    expect(await repo.replaceIfUnchanged(userId, 'missing', 'vault:v1:old', 'vault:v2:new')).toBe(false);
  });

  it('concurrent putOnce of one pair: exactly one insert; the rest see the same or a conflicting value', async () => {
    const repo = new ClientCiphertextRepository(pool);
    const userId = `user-${run}-race`;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => repo.putOnce(userId, 'pair-1', i % 2 === 0 ? 'vault:v1:even' : 'vault:v1:odd')),
    );
    expect(outcomes.filter((o) => o === 'inserted')).toHaveLength(1);
    const stored = await repo.get(userId, 'pair-1');
    outcomes.forEach((outcome, i) => {
      const mine = i % 2 === 0 ? 'vault:v1:even' : 'vault:v1:odd';
      if (outcome !== 'inserted') expect(outcome).toBe(mine === stored ? 'unchanged' : 'conflict');
    });
  });

  it('refuses invalid arguments with DatabaseRequestError naming the field, not the value', async () => {
    const repo = new ClientCiphertextRepository(pool);
    const error = await rejection(repo.putOnce(`user-${run}`, '', 'vault:v1:secret-material'));
    expect(error).toBeInstanceOf(DatabaseRequestError);
    expect(error.message).toMatch(/pairId/);
    expect(error.message).not.toContain('secret-material');
  });
});

describe('CustodianShareRepository', () => {
  const share = (clientId: string, pairId: string, shareText: string, ciphertext = `vault:v1:${randomBytes(6).toString('hex')}`) =>
    ({ clientId, backupMethod: 'PASSWORD', pairId, encryptedShare: ciphertext, shareSha256: sha256(shareText) }) satisfies NewCustodianShare;

  it('putOnce: inserted; a repeated delivery (same share, new Transit ciphertext) is unchanged; another share is a conflict', async () => {
    const repo = new CustodianShareRepository(pool);
    const clientId = `client-${run}-a`;
    const first = share(clientId, 'pair-1', '{"share":"one"}', 'vault:v1:first-encryption');
    expect(await repo.putOnce(first)).toBe('inserted');
    expect(await repo.putOnce(share(clientId, 'pair-1', '{"share":"one"}', 'vault:v1:second-encryption'))).toBe('unchanged');
    expect(await repo.putOnce(share(clientId, 'pair-1', '{"share":"different"}'))).toBe('conflict');
    const [stored] = await repo.getByPair(clientId, 'pair-1');
    expect(stored).toMatchObject({ encryptedShare: 'vault:v1:first-encryption', shareSha256: first.shareSha256, backupMethod: 'PASSWORD' });
    // The same pair under another backup method is another row.
    expect(await repo.putOnce({ ...share(clientId, 'pair-1', '{"share":"one"}'), backupMethod: 'GDRIVE' })).toBe('inserted');
    expect((await repo.getByPair(clientId, 'pair-1')).map((row) => row.backupMethod).sort()).toEqual(['GDRIVE', 'PASSWORD']);
  });

  it('listByClient returns exactly the client’s rows, in the order received', async () => {
    const repo = new CustodianShareRepository(pool);
    const clientId = `client-${run}-b`;
    const delivered = [share(clientId, 'pair-s', 'secp'), share(clientId, 'pair-e', 'ed')];
    for (const entry of delivered) expect(await repo.putOnce(entry)).toBe('inserted');
    await repo.putOnce(share(`client-${run}-someone-else`, 'pair-x', 'other'));
    const rows = await repo.listByClient(clientId);
    expect(rows.map(({ backupMethod, pairId, encryptedShare, shareSha256 }) => ({ backupMethod, pairId, encryptedShare, shareSha256 }))).toEqual(
      delivered.map(({ backupMethod, pairId, encryptedShare, shareSha256 }) => ({ backupMethod, pairId, encryptedShare, shareSha256 })),
    );
    expect(rows.every((row) => row.receivedAt instanceof Date)).toBe(true);
    expect(await repo.listByClient(`client-${run}-nobody`)).toEqual([]);
  });

  it('concurrent deliveries of one share: one insert, the others unchanged', async () => {
    const repo = new CustodianShareRepository(pool);
    const clientId = `client-${run}-race`;
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => repo.putOnce(share(clientId, 'pair-1', 'same share'))));
    expect(outcomes.filter((o) => o === 'inserted')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'unchanged')).toHaveLength(9);
  });

  it('never stores a plaintext share: the repository refuses it, and so does the table', async () => {
    const repo = new CustodianShareRepository(pool);
    const clientId = `client-${run}-plain`;
    const plaintext = '{"share":"plaintext-custodian-share"}';
    const refused = await rejection(repo.putOnce({ ...share(clientId, 'pair-1', plaintext), encryptedShare: plaintext }));
    expect(refused).toBeInstanceOf(DatabaseRequestError);
    expect(refused.message).toMatch(/encryptedShare: must be a KMS ciphertext/);
    expect(refused.message).not.toContain('plaintext-custodian-share');

    const direct = await pool
      .query(
        'INSERT INTO custodian_shares (client_id, backup_method, pair_id, encrypted_share, share_sha256) VALUES ($1, $2, $3, $4, $5)',
        [clientId, 'PASSWORD', 'pair-1', plaintext, sha256(plaintext)],
      )
      .catch((e: unknown) => classifyDatabaseError(e, 'direct insert'));
    expect(direct).toBeInstanceOf(DatabaseRequestError);
    expect((direct as Error).message).toMatch(/23514 check_violation .*constraint custodian_shares_encrypted_share_check/);
    expect((direct as Error).message).not.toContain('plaintext-custodian-share');
    expect(await repo.listByClient(clientId)).toEqual([]);
  });

  it('refuses a share hash that is not 64 lower-case hex characters', async () => {
    const repo = new CustodianShareRepository(pool);
    await expect(repo.putOnce({ ...share(`client-${run}`, 'pair-1', 'x'), shareSha256: 'ABC' })).rejects.toThrow(
      /shareSha256: must be 64 lower-case hex characters/,
    );
  });
});

describe('errors at the database edge', () => {
  it('a missing table is a permanent DatabaseRequestError with its SQLSTATE', async () => {
    const error = await pool.query('SELECT * FROM no_such_table').catch((e: unknown) => classifyDatabaseError(e, 'read'));
    expect(error).toBeInstanceOf(DatabaseRequestError);
    expect((error as DatabaseRequestError).retryable).toBe(false);
    expect((error as DatabaseRequestError).code).toBe('42P01');
  });

  it('a data exception does not repeat the offending value', async () => {
    const error = await pool.query('SELECT $1::int', ['not-a-number-secret']).catch((e: unknown) => classifyDatabaseError(e, 'cast'));
    expect(error).toBeInstanceOf(DatabaseRequestError);
    expect((error as Error).message).toMatch(/22P02 data_exception/);
    expect((error as Error).message).not.toContain('not-a-number-secret');
  });

  it('rows of an unexpected shape are a DatabaseRequestError naming the column, not the value', () => {
    const schema = z.object({ share_sha256: z.string().regex(/^[0-9a-f]{64}$/), received_at: z.date() });
    const read = () => validateRows(schema, [{ share_sha256: 'secret-looking-value', received_at: 'yesterday' }], 'list shares');
    expect(read).toThrow(DatabaseRequestError);
    expect(read).toThrow(/0\.share_sha256: .*; 0\.received_at/);
    expect(read).not.toThrow(/secret-looking-value|yesterday/);
  });
});

describe('the database pool', () => {
  it('a held connection whose server process is killed does not crash the process (a worker died so when the campaign SIGKILLed PostgreSQL)', async () => {
    const failures: Error[] = [];
    const own = createDatabasePool(inject('databaseUrl'), { max: 2, onIdleConnectionError: (error) => failures.push(error) });
    try {
      // Held between statements, as a transaction holds it (db/audit-trail.ts): the pool's own
      // listener is off while a connection is checked out.
      const held = await own.connect();
      const { rows } = await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // Not events.once: it would listen for 'error' too, which is what the process lacked.
      const ended = new Promise<void>((resolve) => held.on('end', () => resolve()));
      await own.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      await ended;
      held.release(true);
      expect(failures.length).toBeGreaterThanOrEqual(1);
      expect(failures[0]).toBeInstanceOf(Error);
      // The pool goes on with a new connection.
      expect((await own.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await own.end();
    }
  });
});
