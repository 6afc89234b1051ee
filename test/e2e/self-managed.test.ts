import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { createDatabasePool } from '../../db/pool';
import { createWebhookServer } from '../../webhook/webhook-server';
import { freePort } from '../../stack/free-port';
import { TcpFaultProxy } from '../../stack/tcp-fault-proxy';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';

const SECRET = `whsec-${randomBytes(12).toString('hex')}`;

/**
 * Self-Managed Backups end to end: the simulator, as Portal, delivers each custodian share to our
 * real webhook (PostgreSQL + Vault) during /v1/backup and validates with /backup/fetch; the worker
 * runs with BACKUP_MODE=self-managed and keeps client ciphertexts in PostgreSQL too.
 */
let pool: Pool;
let webhook: FastifyInstance;
let webhookUrl: string;
let env: BackupTestEnv;
/** Vault as the webhook sees it (the workers reach Vault directly). */
let webhookVault: TcpFaultProxy;

beforeAll(async () => {
  pool = createDatabasePool(inject('databaseUrl'));
  const vault = new URL(inject('vaultAddr'));
  webhookVault = new TcpFaultProxy({ host: vault.hostname, port: Number(vault.port) }, await freePort());
  await webhookVault.start();
  webhook = createWebhookServer({
    records: new CustodianShareRepository(pool),
    transit: new VaultTransit({ endpoint: `http://127.0.0.1:${webhookVault.port}`, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, new StaticTokenAuth(inject('vaultToken'))),
    secrets: [SECRET],
    deadlineMs: 8_000,
    bodyLimitBytes: 64 * 1024,
    logger: pino({ level: 'silent' }),
  });
  webhookUrl = await webhook.listen({ host: '127.0.0.1', port: 0 });
  env = await createBackupTestEnv({
    simulator: { selfManaged: { webhookUrl, webhookSecret: SECRET }, retainCustodianShares: true },
    workerEnv: { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: inject('databaseUrl') },
  });
  await env.startWorker();
});
afterAll(async () => {
  await env?.close();
  await webhook?.close();
  await webhookVault?.stop();
  await pool?.end();
});

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);

async function custodianRows(clientId: string) {
  return (await pool.query('SELECT pair_id, share_sha256 FROM custodian_shares WHERE client_id = $1', [clientId])).rows as { pair_id: string; share_sha256: string }[];
}

describe('Self-Managed Backups, end to end', () => {
  it('the webhook holds both custodian shares, the database both client ciphertexts, and only then are the pairs marked', async () => {
    const userId = env.seedUser('self');
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    const client = env.simulator.state.user(userId)!;
    const rows = await custodianRows(client.clientId);
    expect(rows.map((row) => row.pair_id).sort()).toEqual(Object.values(result.pairIds).sort());
    for (const pair of pairsOf(userId)) {
      expect(pair.status).toBe('completed');
      expect(pair.custodian).toMatchObject({ mode: 'self-managed', delivery: 'delivered', validated: true });
      // What the webhook committed is what Portal sent (digest of the exact string).
      expect(rows.find((row) => row.pair_id === pair.id)!.share_sha256).toBe(pair.custodian.sha256);
    }
    const ciphertexts = (await pool.query('SELECT pair_id FROM client_ciphertexts WHERE user_id = $1', [userId])).rows;
    expect(ciphertexts).toHaveLength(2);
    const status = await env.backups.getBackupStatus(userId);
    expect(status.result?.stepDurationsMs).toHaveProperty('CHECK_CUSTODIAN');
  });

  it('a failed delivery fails that /v1/backup (FAILED_WEBHOOK); the retry makes new pairs and completes, naming the orphans', async () => {
    const userId = env.seedUser('self-fail');
    env.simulator.faults.add({ route: 'webhookDelivery', kind: 'webhook-status', status: 503, count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(4);
    const failed = pairs.filter((pair) => pair.status === 'incomplete');
    expect(failed).toHaveLength(2);
    expect(result.orphanedPairIds.sort()).toEqual(failed.map((pair) => pair.id).sort());
    expect(pairs.filter((pair) => pair.status === 'completed').map((pair) => pair.id).sort()).toEqual(Object.values(result.pairIds).sort());
    env.simulator.faults.clear();
  });

  it('Vault down at the webhook: 503, nothing stored, FAILED_WEBHOOK at Portal; once Vault is back the backup completes', async () => {
    const userId = env.seedUser('self-vault-down');
    const client = env.simulator.state.user(userId)!;
    await webhookVault.setMode('refuse');
    await env.backups.startBackupWorkflow(userId);
    await eventually('a refused delivery', async () =>
      env.simulator.webhookDeliveries.some((d) => d.userId === userId && d.call === 'backup' && d.outcome === 'failed') ? true : undefined,
    );
    expect(await custodianRows(client.clientId)).toEqual([]);
    expect(pairsOf(userId).every((pair) => pair.status === 'incomplete')).toBe(true);
    await webhookVault.setMode('pass');
    const result = await env.backups.waitForBackup(userId);
    const failed = env.simulator.webhookDeliveries.find((d) => d.userId === userId && d.outcome === 'failed')!;
    expect(failed.status).toBe(503);
    const held = (await custodianRows(client.clientId)).map((row) => row.pair_id).sort();
    expect(held).toEqual(Object.values(result.pairIds).sort());
    expect(result.orphanedPairIds.length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('a pair whose custodian share the company does not hold is never marked: the backup parks with the reason', async () => {
    const userId = env.seedUser('self-missing');
    const client = env.simulator.state.user(userId)!;
    // Hold the custodian check (its Portal call) long enough to lose the rows, as a database restore would.
    env.simulator.faults.add({ route: 'getClient', kind: 'latency', latencyMs: 2_000, count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    await eventually('the custodian rows', async () => ((await custodianRows(client.clientId)).length === 2 ? true : undefined));
    await pool.query('DELETE FROM custodian_shares WHERE client_id = $1', [client.clientId]);
    const parked = await waitUntilParked(env.backups, userId, 90_000);
    expect(parked.step).toBe('CHECK_CUSTODIAN');
    expect(parked.progress?.lastError).toMatchObject({ type: 'CustodianShareMissingError' });
    expect(parked.progress?.lastError?.message).toContain('never stored the custodian share');
    expect(pairsOf(userId).every((pair) => pair.status === 'incomplete')).toBe(true);
    await env.backups.abandonBackup(userId, 'test: custodian shares lost', operatorSigner('ops-mallory'));
  }, 120_000);
});

describe('Self-Managed recovery', () => {
  it('recovers with the client ciphertexts from PostgreSQL while Portal fetches the custodian halves from our webhook (retried once it fails)', async () => {
    const userId = env.seedUser('self-recover');
    await env.backups.startBackupWorkflow(userId);
    const backup = await env.backups.waitForBackup(userId);
    env.simulator.faults.add({ route: 'webhookFetch', kind: 'webhook-status', status: 503, count: 1, userId });
    const recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
    await recoveries.startRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.backupPairIds).toEqual(backup.pairIds);
    const fetches = env.simulator.webhookDeliveries.filter((record) => record.userId === userId && record.call === 'fetch' && record.purpose === 'recover');
    expect(fetches.map((record) => record.outcome)).toEqual(['failed', 'ok']);
    // The fresh backup (Self-Managed, so its custodian shares went to the webhook) ran with the recovered signing shares.
    const fresh = await env.backups.waitForBackup(userId, result.freshBackup!.runId);
    const rows = await custodianRows(env.simulator.state.user(userId)!.clientId);
    expect(rows.map((row) => row.pair_id)).toEqual(expect.arrayContaining(Object.values(fresh.pairIds)));
    env.simulator.faults.clear();
  });
});

describe('BACKUP_MODE checked against Portal’s environment', () => {
  it('a self-managed worker against a Portal-Managed environment fails before anything is made', async () => {
    const mismatched = await createBackupTestEnv({
      workerEnv: { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: inject('databaseUrl') },
    });
    try {
      await mismatched.startWorker();
      const userId = mismatched.seedUser('mismatch');
      await mismatched.backups.startBackupWorkflow(userId);
      await expect(mismatched.backups.waitForBackup(userId)).rejects.toMatchObject({
        reasonType: 'BackupModeMismatchError',
        message: expect.stringContaining('set BACKUP_MODE=portal-managed'),
      });
      expect(mismatched.simulator.calls.backup ?? 0).toBe(0);
    } finally {
      await mismatched.close();
    }
  });
});
