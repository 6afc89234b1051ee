import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import { createDatabasePool } from '../../db/pool';
import { PostgresCiphertextStore } from '../../adapters/stores/postgres-ciphertext-store';
import { CiphertextConflictError } from '../../domain/errors';
import { transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { startCompanyCiphertextEndpoint, type CompanyCiphertextEndpoint } from '../support/company-ciphertext-endpoint';
import { createBackupTestEnv, type BackupTestEnv } from '../support/backup-test-env';

let endpoint: CompanyCiphertextEndpoint;
let env: BackupTestEnv;

beforeAll(async () => {
  endpoint = await startCompanyCiphertextEndpoint();
  env = await createBackupTestEnv({
    workerEnv: {
      CIPHERTEXT_STORE: 'http',
      CIPHERTEXT_HTTP_WRITE_URL: endpoint.template,
      CIPHERTEXT_HTTP_AUTH_HEADER: 'Authorization: Bearer company-store-token',
      // Portal's example backend keeps one record per user; the risk is accepted for this test.
      CIPHERTEXT_HTTP_ONE_RECORD_PER_USER: 'true',
    },
  });
  await env.startWorker();
});
afterAll(async () => {
  await env?.close();
  await endpoint?.close();
});

describe('CIPHERTEXT_STORE=http: the company’s own endpoint', () => {
  it('stores both ciphertexts there (not at Portal), verifies them and marks the pairs', async () => {
    const userId = env.seedUser('company-http');
    endpoint.failNext(503);
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');

    const record = endpoint.records.get(userId) as { data: { secp256k1Ciphertext: string; ed25519Ciphertext: string }; backupSharePairIds: Record<string, string> };
    expect(record.backupSharePairIds).toEqual(result.pairIds);
    expect(endpoint.lastAuth()).toBe('Bearer company-store-token');
    const client = env.simulator.state.user(userId)!;
    const pairs = client.wallets.flatMap((wallet) => wallet.backupSharePairs);
    expect(pairs.every((pair) => pair.status === 'completed')).toBe(true);
    // Nothing went to Portal's ciphertext route for this user.
    expect(pairs.every((pair) => pair.clientCipherText === undefined)).toBe(true);

    const transit = new VaultTransit({ endpoint: env.vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, new StaticTokenAuth(env.vault.token));
    const [secp] = await transit.decryptBatch([{ ciphertext: record.data.secp256k1Ciphertext, context: transitContext(userId, result.pairIds.SECP256K1) }]);
    const issued = pairs.find((pair) => pair.id === result.pairIds.SECP256K1)!;
    expect(JSON.parse(secp!.toString('utf8'))).toEqual({ id: issued.id, share: issued.share });
  });
});

describe('CIPHERTEXT_STORE=postgres: the company’s own database', () => {
  let pgEnv: BackupTestEnv;
  let pool: Pool;

  beforeAll(async () => {
    pgEnv = await createBackupTestEnv({ workerEnv: { CIPHERTEXT_STORE: 'postgres', DATABASE_URL: inject('databaseUrl') } });
    await pgEnv.startWorker();
    pool = createDatabasePool(inject('databaseUrl'));
  });
  afterAll(async () => {
    await pool?.end();
    await pgEnv?.close();
  });

  it('stores both ciphertexts in client_ciphertexts (not at Portal), verifies them and marks the pairs', async () => {
    const userId = pgEnv.seedUser('company-pg');
    await pgEnv.backups.startBackupWorkflow(userId);
    const result = await pgEnv.backups.waitForBackup(userId);
    const rows = (await pool.query('SELECT pair_id, ciphertext FROM client_ciphertexts WHERE user_id = $1 ORDER BY pair_id', [userId])).rows as {
      pair_id: string;
      ciphertext: string;
    }[];
    expect(rows.map((row) => row.pair_id).sort()).toEqual(Object.values(result.pairIds).sort());
    const pairs = pgEnv.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    expect(pairs.every((pair) => pair.status === 'completed' && pair.clientCipherText === undefined)).toBe(true);
    const transit = new VaultTransit({ endpoint: pgEnv.vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, new StaticTokenAuth(pgEnv.vault.token));
    const plaintexts = await transit.decryptBatch(rows.map((row) => ({ ciphertext: row.ciphertext, context: transitContext(userId, row.pair_id) })));
    for (const [index, row] of rows.entries()) {
      const issued = pairs.find((pair) => pair.id === row.pair_id)!;
      expect(JSON.parse(plaintexts[index]!.toString('utf8'))).toEqual({ id: issued.id, share: issued.share });
    }
  });

  it('after a backup, a second, different ciphertext for its pair is refused and the stored one kept', async () => {
    const userId = pgEnv.seedUser('company-pg-conflict');
    await pgEnv.backups.startBackupWorkflow(userId);
    const result = await pgEnv.backups.waitForBackup(userId);
    const repository = new ClientCiphertextRepository(pool);
    const stored = await repository.get(userId, result.pairIds.SECP256K1);
    const store = new PostgresCiphertextStore(repository);
    await expect(
      store.put({ userId }, [{ curve: 'SECP256K1', pairId: result.pairIds.SECP256K1, ciphertext: 'vault:v1:another' }], { freshPairs: false }),
    ).rejects.toThrow(CiphertextConflictError);
    expect(await repository.get(userId, result.pairIds.SECP256K1)).toBe(stored);
    // The same ciphertext again is a no-op, reported as already stored (a retried step's read-back).
    expect(
      await store.put({ userId }, [{ curve: 'SECP256K1', pairId: result.pairIds.SECP256K1, ciphertext: stored! }], { freshPairs: false }),
    ).toEqual({ alreadyStored: [result.pairIds.SECP256K1] });
  });
});
