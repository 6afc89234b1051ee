import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { migrate } from '../../db/migrate';
import { createDatabasePool } from '../../db/pool';
import { freePort } from '../../stack/free-port';
import { startPostgresServer, type PostgresServer } from '../../stack/postgres-server';
import { TcpFaultProxy } from '../../stack/tcp-fault-proxy';
import { custodianShareContext } from '../../adapters/kms/transit-context';
import { createWebhookServer } from '../../webhook/webhook-server';

const SECRET = 'whsec-current-0123456789';
const OLD_SECRET = 'whsec-previous-0123456789';

/** The webhook on a PostgreSQL of its own (killed and restarted here) and Vault behind a fault proxy. */
let postgres: PostgresServer;
let pool: Pool;
let vaultProxy: TcpFaultProxy;
let app: FastifyInstance;
let url: string;
const logLines: string[] = [];

beforeAll(async () => {
  postgres = await startPostgresServer({ logFile: join(inject('runDir'), 'webhook-postgres.log'), allowExternal: false });
  pool = createDatabasePool(postgres.url, { statementTimeoutMs: 3_000, connectionTimeoutMs: 2_000 });
  await migrate(pool);
  const vault = new URL(inject('vaultAddr'));
  vaultProxy = new TcpFaultProxy({ host: vault.hostname, port: Number(vault.port) }, await freePort());
  await vaultProxy.start();
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  app = createWebhookServer({
    records: new CustodianShareRepository(pool),
    transit: new VaultTransit({ endpoint: `http://127.0.0.1:${vaultProxy.port}`, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 1_000 }, new StaticTokenAuth(inject('vaultToken'))),
    secrets: [SECRET, OLD_SECRET],
    deadlineMs: 3_000,
    bodyLimitBytes: 16 * 1024,
    logger,
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
}, 240_000);
afterAll(async () => {
  await app?.close();
  await pool?.end();
  await vaultProxy?.stop();
  await postgres?.stop();
});

const custodianShare = (pairId: string) => JSON.stringify({ custodianShare: randomBytes(32).toString('hex'), pairId });

/** `secret: null` sends no X-Webhook-Secret header at all. */
async function post(path: string, body: unknown, secret: string | null = SECRET) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(secret !== null ? { 'x-webhook-secret': secret } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined };
}

async function rows(clientId: string): Promise<number> {
  const result = await pool.query('SELECT count(*)::int AS n FROM custodian_shares WHERE client_id = $1', [clientId]);
  return (result.rows[0] as { n: number }).n;
}

const client = () => `client-${randomBytes(4).toString('hex')}`;

describe('the custodian-share webhook (real PostgreSQL and Vault)', () => {
  it('stores a share encrypted, answers 200 only then, and fetch returns exactly what was delivered', async () => {
    const clientId = client();
    const shares = [custodianShare('pair-a'), custodianShare('pair-b')];
    expect((await post('/backup', { clientId, backupMethod: 'GDRIVE-SECP256K1', share: shares[0], backupSharePairId: 'pair-a' })).status).toBe(200);
    // No backupSharePairId: taken from inside the share; no backupMethod: UNKNOWN, stored verbatim.
    expect((await post('/backup', { clientId, share: shares[1] }, OLD_SECRET)).status).toBe(200);
    const stored = await pool.query('SELECT backup_method, pair_id, encrypted_share FROM custodian_shares WHERE client_id = $1 ORDER BY pair_id', [clientId]);
    expect(stored.rows.map((row: { backup_method: string; pair_id: string }) => [row.backup_method, row.pair_id])).toEqual([
      ['GDRIVE-SECP256K1', 'pair-a'],
      ['UNKNOWN', 'pair-b'],
    ]);
    for (const row of stored.rows as { encrypted_share: string }[]) {
      expect(row.encrypted_share).toMatch(/^vault:v\d+:/);
      for (const share of shares) expect(row.encrypted_share).not.toContain(share);
    }
    const fetched = await post('/backup/fetch', { clientId });
    expect(fetched.status).toBe(200);
    expect((fetched.body!.backupShares as string[]).sort()).toEqual([...shares].sort());
    expect((await post('/backup/fetch', { clientId: client() })).body).toEqual({ backupShares: [] });
  });

  it('a wrong or missing secret gets 401 and stores nothing', async () => {
    const clientId = client();
    for (const secret of ['whsec-wrong-0123456789', null, '', SECRET.slice(0, -1)]) {
      expect((await post('/backup', { clientId, share: custodianShare('p1'), backupSharePairId: 'p1' }, secret)).status).toBe(401);
    }
    expect((await post('/backup/fetch', { clientId }, 'nope')).status).toBe(401);
    expect(await rows(clientId)).toBe(0);
  });

  it('a malformed body gets 400 naming the field, an oversized one 413; nothing is stored', async () => {
    const clientId = client();
    const missingShare = await post('/backup', { clientId, backupSharePairId: 'p1' });
    expect(missingShare).toMatchObject({ status: 400, body: { message: expect.stringContaining('share') } });
    expect((await post('/backup', '{"clientId": "x", "share": ')).status).toBe(400);
    expect((await post('/backup', { clientId, share: 'not json and no pair id' })).body?.message).toContain('no backupSharePairId');
    expect((await post('/backup', { clientId, share: 'x'.repeat(20_000), backupSharePairId: 'p1' })).status).toBe(413);
    expect(await rows(clientId)).toBe(0);
  });

  it('a repeated delivery keeps one row; a different share for the same pair is refused with 409 and the first kept', async () => {
    const clientId = client();
    const share = custodianShare('p1');
    for (let i = 0; i < 3; i++) expect((await post('/backup', { clientId, share, backupSharePairId: 'p1' })).status).toBe(200);
    expect(await rows(clientId)).toBe(1);
    expect((await post('/backup', { clientId, share: custodianShare('p1'), backupSharePairId: 'p1' })).status).toBe(409);
    expect((await post('/backup/fetch', { clientId })).body).toEqual({ backupShares: [share] });
  });

  it('Vault down: 503 within the budget and nothing stored; the same delivery succeeds once Vault is back', async () => {
    const clientId = client();
    const share = custodianShare('p1');
    for (const mode of ['refuse', 'blackhole'] as const) {
      await vaultProxy.setMode(mode);
      // A blackholed Vault never answers: the 503 itself shows the webhook's own budget ended the wait.
      expect((await post('/backup', { clientId, share, backupSharePairId: 'p1' })).status).toBe(503);
      expect(await rows(clientId)).toBe(0);
    }
    await vaultProxy.setMode('pass');
    expect((await post('/backup', { clientId, share, backupSharePairId: 'p1' })).status).toBe(200);
    expect(await rows(clientId)).toBe(1);
  });

  it('PostgreSQL SIGKILLed during deliveries: no 200 without its row, and retried deliveries succeed after the restart', async () => {
    const clientId = client();
    const deliveries = Array.from({ length: 12 }, (_, i) => ({ pairId: `kill-${i}`, share: custodianShare(`kill-${i}`) }));
    const answers = deliveries.map((delivery, i) =>
      new Promise((resolve) => setTimeout(resolve, i * 15)).then(() => post('/backup', { clientId, share: delivery.share, backupSharePairId: delivery.pairId })),
    );
    setTimeout(() => void postgres.kill(), 60);
    const statuses = (await Promise.all(answers)).map((answer) => answer.status);
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
    expect(statuses).toContain(503);
    await postgres.restart();
    const kept = await pool.query('SELECT pair_id FROM custodian_shares WHERE client_id = $1', [clientId]);
    const keptIds = new Set((kept.rows as { pair_id: string }[]).map((row) => row.pair_id));
    deliveries.forEach((delivery, i) => {
      if (statuses[i] === 200) expect(keptIds.has(delivery.pairId), `acknowledged ${delivery.pairId} is committed`).toBe(true);
    });
    // Portal would retry nothing; a repeated delivery (e.g. by an operator) of each now succeeds.
    for (const delivery of deliveries) {
      expect((await post('/backup', { clientId, share: delivery.share, backupSharePairId: delivery.pairId })).status).toBe(200);
    }
    expect(await rows(clientId)).toBe(deliveries.length);
    const fetched = await post('/backup/fetch', { clientId });
    expect((fetched.body!.backupShares as string[]).sort()).toEqual(deliveries.map((d) => d.share).sort());
  }, 120_000);

  it('a share stored for one client and pair does not decrypt in another’s context', async () => {
    const stored = await pool.query('SELECT client_id, pair_id, encrypted_share FROM custodian_shares LIMIT 1');
    const row = stored.rows[0] as { client_id: string; pair_id: string; encrypted_share: string };
    const transit = new VaultTransit({ endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, new StaticTokenAuth(inject('vaultToken')));
    await expect(transit.decryptBatch([{ ciphertext: row.encrypted_share, context: custodianShareContext('someone-else', row.pair_id) }])).rejects.toThrow();
  });

  it('logs say what happened with ids, never a share or a secret', () => {
    const text = logLines.join('\n');
    expect(text).toContain('custodian share stored');
    expect(text).toContain('malformed webhook request');
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(OLD_SECRET);
    expect(text).not.toMatch(/"custodianShare"|[0-9a-f]{64}/);
  });
});

describe('the webhook’s source-address allowlist', () => {
  it('serves only the listed addresses (Portal’s documented ones in production)', async () => {
    const guarded = createWebhookServer({
      records: { putOnce: async () => 'inserted', listByClient: async () => [] },
      transit: { encryptBatch: async () => [], decryptBatch: async () => [] },
      secrets: [SECRET],
      allowedSourceIps: ['35.203.150.117'],
      deadlineMs: 1_000,
      bodyLimitBytes: 1_024,
      logger: pino({ level: 'silent' }),
    });
    const call = (remoteAddress: string) =>
      guarded.inject({ method: 'POST', url: '/backup/fetch', remoteAddress, headers: { 'x-webhook-secret': SECRET }, payload: { clientId: 'c' } });
    expect((await call('10.1.2.3')).statusCode).toBe(403);
    expect((await call('::ffff:35.185.20.23')).statusCode).toBe(403);
    expect((await call('35.203.150.117')).statusCode).toBe(200);
    expect((await call('::ffff:35.203.150.117')).statusCode).toBe(200);
    await guarded.close();
  });
});
