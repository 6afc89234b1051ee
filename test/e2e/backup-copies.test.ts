import type { Pool } from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { DrillClient } from '../../client/drill-client';
import { openCopyRepair } from '../../client/cli-copies';
import { repairCopies, type CopyRepairRow } from '../../client/copy-repair';
import { loadCopyRepairConfig } from '../../client/copy-repair-config';
import { EjectClient } from '../../client/eject-client';
import { collectEject } from '../../client/eject';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecoveryClient } from '../../client/recovery-client';
import { createDatabasePool } from '../../db/pool';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import { transitContext } from '../../adapters/kms/transit-context';
import { CURVES } from '../../domain/curves';
import type { BackupPairIds } from '../../domain/backup-types';
import { startCompanyCiphertextEndpoint, type CompanyCiphertextEndpoint } from '../support/company-ciphertext-endpoint';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveries, operatorSigner } from '../support/operators';

/**
 * Copies in two stores (CIPHERTEXT_STORES=http,postgres) on the real stack: the company endpoint
 * (the primary, which the test can take down) and the company's PostgreSQL. STORE writes and
 * verifies both before MARK; the drill names a missing copy, repair restores it; recovery and
 * eject restore from the second copy when the primary store is down, and say so.
 */
let endpoint: CompanyCiphertextEndpoint;
let env: BackupTestEnv;
let pool: Pool;
let repository: ClientCiphertextRepository;
let drills: DrillClient;

beforeAll(async () => {
  endpoint = await startCompanyCiphertextEndpoint();
  const perPair = `${endpoint.template}?pair={pairId}`;
  env = await createBackupTestEnv({
    workerEnv: { CIPHERTEXT_STORES: 'http,postgres', CIPHERTEXT_HTTP_WRITE_URL: perPair, DATABASE_URL: inject('databaseUrl') },
  });
  await env.startWorker();
  pool = createDatabasePool(inject('databaseUrl'));
  repository = new ClientCiphertextRepository(pool);
  drills = new DrillClient(env.backups.temporal, env.taskQueue);
});
afterAll(async () => {
  await pool?.end();
  await env?.close();
  await endpoint?.close();
});
beforeEach(() => endpoint.setDown(false));

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
const httpCopy = (userId: string, pairId: string) => endpoint.records.get(`${userId}/${pairId}`) as { data: Record<string, string> } | undefined;

async function backedUp(prefix: string): Promise<{ userId: string; pairIds: BackupPairIds }> {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  return { userId, pairIds: (await env.backups.waitForBackup(userId)).pairIds };
}

/** Both copies of each pair are there, equal, and decrypt to exactly the `{id, share}` Portal issued. */
async function expectBothCopies(userId: string, pairIds: BackupPairIds) {
  for (const curve of CURVES) {
    const pairId = pairIds[curve];
    const inPostgres = await repository.get(userId, pairId);
    const inHttp = Object.values(httpCopy(userId, pairId)?.data ?? {})[0];
    expect(inPostgres, `${curve} copy in postgres`).toBeDefined();
    expect(inHttp, `${curve} copy at the endpoint`).toBe(inPostgres);
    const [plaintext] = await env.kms.decryptBatch([{ ciphertext: inPostgres!, context: transitContext(userId, pairId) }]);
    const issued = pairsOf(userId).find((pair) => pair.id === pairId)!;
    expect(JSON.parse(plaintext!.toString('utf8'))).toEqual({ id: issued.id, share: issued.share });
  }
}

describe('CIPHERTEXT_STORES=http,postgres', () => {
  it('with one store down, STORE waits and marks nothing; once it is back the backup completes with both copies', async () => {
    const userId = env.seedUser('copies-down');
    endpoint.setDown(true);
    await env.backups.startBackupWorkflow(userId);
    // STORE has been refused by the endpoint more than once: the run retries, it does not move on.
    await eventually('STORE retried while the endpoint is down', async () => {
      const status = await env.backups.getBackupStatus(userId);
      return endpoint.refusedWhileDown() >= 2 && status.pendingActivity?.type === 'storeCiphertexts' && status.pendingActivity.attempt >= 2 ? status : undefined;
    });
    const pairs = pairsOf(userId);
    expect(pairs.length).toBeGreaterThan(0);
    expect(pairs.every((pair) => pair.status !== 'completed')).toBe(true);
    expect((await env.backups.getBackupStatus(userId)).execution).toBe('RUNNING');

    endpoint.setDown(false);
    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');
    expect(pairsOf(userId).filter((pair) => Object.values(result.pairIds).includes(pair.id)).every((pair) => pair.status === 'completed')).toBe(true);
    await expectBothCopies(userId, result.pairIds);
  });

  it('a copy deleted after MARK: the drill names the store (COPY_MISSING), repair re-creates it (audited), the drill passes', async () => {
    const { userId, pairIds } = await backedUp('copies-lost');
    await pool.query('DELETE FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [userId, pairIds.SECP256K1]);

    const first = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds: [userId] }, usersPerMinute: 6_000 })).drillId);
    expect(first.failures).toEqual([expect.objectContaining({ userId, kind: 'COPY_MISSING', reason: expect.stringContaining('the postgres copy is missing') })]);

    const repair = await openCopyRepair(loadCopyRepairConfig(env.workerEnv));
    const rows: CopyRepairRow[] = [];
    try {
      const summary = await repairCopies(repair.deps, (async function* () { yield [userId]; })(), { usersPerMinute: 6_000 }, (row) => void rows.push(row));
      expect(summary).toMatchObject({ users: 1, repaired: 1, failed: 0 });
    } finally {
      await repair.close();
    }
    expect(rows).toEqual([{ userId, outcome: 'repaired', source: 'http', repaired: [{ store: 'postgres', curve: 'SECP256K1', pairId: pairIds.SECP256K1 }] }]);
    await expectBothCopies(userId, pairIds);
    const audited = await pool.query<{ kind: string; details: string }>("SELECT kind, details FROM audit_events WHERE user_id = $1 AND kind = 'copy.repaired'", [userId]);
    expect(audited.rows).toHaveLength(1);
    expect(JSON.parse(audited.rows[0]!.details)).toMatchObject({ source: 'http', repaired: [{ store: 'postgres', pairId: pairIds.SECP256K1 }] });

    const again = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds: [userId] }, usersPerMinute: 6_000 })).drillId);
    expect(again.failures).toEqual([]);
    expect(again.counts).toMatchObject({ passed: 1 });
  });

  it('with the primary store down, recovery and eject restore from the second copy and name it', async () => {
    const { userId, pairIds } = await backedUp('copies-primary-gone');
    endpoint.setDown(true);

    const { startApproved } = approvingRecoveries({ temporal: env.backups.temporal, taskQueue: env.taskQueue });
    await startApproved(userId, { freshBackup: false });
    const result = await new RecoveryClient(env.backups.temporal, env.taskQueue).waitForRecovery(userId);
    expect(result).toMatchObject({ status: 'COMPLETED', backupPairIds: pairIds, backupStore: 'postgres' });
    expect(endpoint.refusedWhileDown()).toBeGreaterThanOrEqual(1);

    // Eject (requested by ops-carol, approved by ops-alice and ops-bob) releases the postgres copy, and says so.
    const ejects = (operator: 'ops-alice' | 'ops-bob' | 'ops-carol') => new EjectClient(env.backups.temporal, env.taskQueue, operatorSigner(operator));
    const dir = mkdtempSync(join(tmpdir(), 'copies-eject-'));
    await ejects('ops-carol').requestEject(userId, 'copies test', join(dir, 'key.json'));
    await ejects('ops-alice').approveEject(userId);
    await ejects('ops-bob').approveEject(userId);
    const released = await ejects('ops-carol').waitForEject(userId);
    expect(released.release).toMatchObject({ store: 'postgres', pairIds });
    const collected = await collectEject(userId, { key: join(dir, 'key.json'), out: join(dir, 'shares.json') }, { databaseUrl: inject('databaseUrl'), logLevel: 'error' });
    expect(collected.store).toBe('postgres');
    expect((JSON.parse(readFileSync(join(dir, 'shares.json'), 'utf8')) as { pairIds: BackupPairIds }).pairIds).toEqual(pairIds);
  });
});
