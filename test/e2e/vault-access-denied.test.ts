import { randomBytes } from 'node:crypto';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { workerPolicy } from '../../stack/vault-policies';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

/**
 * Vault refusing the workers' token is a condition of the whole service: while it lasts, backups
 * wait at step 1 and ask Portal for nothing (before, each made its pairs and then parked at
 * ENCRYPT, one retry per user); once the policy is fixed they go on by themselves.
 */
const admin = nodeVault({ endpoint: inject('vaultAddr'), token: inject('vaultToken') });
const keyName = `access-${randomBytes(4).toString('hex')}`;
const policy = `mpc-backup-access-${keyName}`;
let env: BackupTestEnv;

beforeAll(async () => {
  await admin.write(`transit/keys/${keyName}`, { type: 'aes256-gcm96', derived: true });
  // What a bad policy deploy leaves: the key can be read (the worker starts), not used.
  await admin.addPolicy({ name: policy, rules: `path "transit/keys/${keyName}" { capabilities = ["read"] }` });
  const created = (await admin.tokenCreate({ policies: [policy], ttl: '1h' })) as { auth: { client_token: string } };
  admin.token = inject('vaultToken');
  env = await createBackupTestEnv({ workerEnv: { VAULT_TRANSIT_KEY: keyName, VAULT_TOKEN: created.auth.client_token } });
  await env.startWorker();
});
afterAll(() => env?.close());

describe('Vault refusing the workers\' token', () => {
  it('holds every backup at step 1 with nothing made at Portal, and lets them all go on once the policy is fixed', async () => {
    const users = [env.seedUser('denied'), env.seedUser('denied')];
    for (const userId of users) await env.backups.startBackupWorkflow(userId);
    // Both are retrying step 1 (its second attempt has started) and no pair exists at Portal.
    for (const userId of users) {
      await eventually(`${userId} to retry step 1`, async () => {
        const { raw } = await env.backups.temporal.workflow.getHandle(`backup-${userId}`).describe();
        const pending = raw.pendingActivities?.find((activity) => activity.activityType?.name === 'mpcBackup');
        return (pending?.attempt ?? 0) >= 2 ? true : undefined;
      });
    }
    expect(env.simulator.calls.backup ?? 0).toBe(0);
    for (const userId of users) {
      expect(env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs)).toEqual([]);
      expect((await env.backups.getBackupStatus(userId)).status).toBe('RUNNING');
    }

    await admin.addPolicy({ name: policy, rules: workerPolicy(keyName) });
    for (const userId of users) expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    expect(env.simulator.calls.backup ?? 0).toBe(2);
  });
});
