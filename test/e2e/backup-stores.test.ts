import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transitContext } from '../../activities/transit-context';
import { StaticTokenAuth } from '../../activities/vault-auth';
import { VaultTransit } from '../../activities/vault-transit';
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
