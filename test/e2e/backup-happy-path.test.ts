import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countBillableActions } from '../../bench/billable-actions';
import { transitContext } from '../../adapters/kms/transit-context';
import { CURVES } from '../../domain/curves';
import { InvalidUserIdError } from '../../domain/user-id';
import { ciphertextPattern, createBackupTestEnv, KMS_PROVIDERS, type BackupTestEnv } from '../support/backup-test-env';

describe.each(KMS_PROVIDERS)('one backup, end to end (KMS_PROVIDER=%s)', (provider) => {
  let env: BackupTestEnv;

  beforeAll(async () => {
    env = await createBackupTestEnv({ kms: provider });
    await env.startWorker();
  });
  afterAll(() => env?.close());

  /** What the stored ciphertext decrypts to, with the KMS's admin credentials, in the user-and-pair context. */
  const decrypt = async (userId: string, pairId: string, ciphertext: string) => {
    const [opened] = await env.kms.decryptEach([{ ciphertext, context: transitContext(userId, pairId) }]);
    if (!opened || 'error' in opened) throw new Error(`does not decrypt: ${opened?.error}`);
    return opened.plaintext.toString('utf8');
  };

  it('completes, marks both pairs, and stores ciphertexts that decrypt to Portal’s {id, share}', async () => {
    const userId = env.seedUser();
    const started = await env.backups.startBackupWorkflow(userId);
    expect(started).toMatchObject({ userId, workflowId: `backup-${userId}`, alreadyRunning: false });

    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');
    expect(result.orphanedPairIds).toEqual([]);

    const client = env.simulator.state.user(userId)!;
    for (const curve of CURVES) {
      const wallet = client.wallets.find((w) => w.curve === curve)!;
      expect(wallet.backupSharePairs).toHaveLength(1);
      const pair = wallet.backupSharePairs[0]!;
      expect(pair.id).toBe(result.pairIds[curve]);
      expect(pair.status).toBe('completed');
      expect(pair.markCount).toBe(1);
      expect(pair.clientCipherText).toMatch(ciphertextPattern(provider));
      expect(await decrypt(userId, pair.id, pair.clientCipherText!)).toBe(JSON.stringify({ id: pair.id, share: pair.share }));
    }
    // Recovery: the decrypted ciphertexts rebuild the /v1/backup response Portal accepts.
    const rebuilt: Record<string, unknown> = {};
    for (const curve of CURVES) {
      const pair = client.wallets.find((w) => w.curve === curve)!.backupSharePairs[0]!;
      rebuilt[curve] = JSON.parse(await decrypt(userId, pair.id, pair.clientCipherText!));
    }
    const recovered = await fetch(`${env.simulator.url}/v1/recover`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ backupResponse: JSON.stringify(rebuilt) }),
    });
    expect(recovered.status).toBe(200);
    expect(Object.keys((await recovered.json()) as object)).toEqual([...CURVES]);

    expect(client.markEvents).toEqual([
      expect.objectContaining({ status: 'STORED_CLIENT_BACKUP_SHARE', pairIds: [result.pairIds.SECP256K1, result.pairIds.ED25519] }),
    ]);

    const status = await env.backups.getBackupStatus(userId);
    expect(status).toMatchObject({ execution: 'COMPLETED', status: 'COMPLETED', step: 'DONE' });
  });

  it('costs seven billable actions: one start, four activities, the local activity that checks MARK\'s receipt, one search-attribute upsert (COMPLETED / DONE)', async () => {
    const userId = env.seedUser();
    await env.backups.startBackupWorkflow(userId);
    await env.backups.waitForBackup(userId);
    const history = await env.backups.temporal.workflow.getHandle(`backup-${userId}`).fetchHistory();
    // A running run's step is not upserted on every step: only with a status change.
    expect(countBillableActions(history)).toMatchObject({ starts: 1, activities: 4, localActivities: 1, searchAttributeUpserts: 1, total: 7 });
    expect(await env.backups.getBackupStatus(userId)).toMatchObject({ status: 'COMPLETED', step: 'DONE' });
  });

  it('a ciphertext bound to one pair does not decrypt under another pair’s context', async () => {
    const userId = env.seedUser();
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    const pair = env.simulator.state.user(userId)!.wallets[0]!.backupSharePairs[0]!;
    const other = pair.curve === 'SECP256K1' ? result.pairIds.ED25519 : result.pairIds.SECP256K1;
    await expect(decrypt(userId, other, pair.clientCipherText!)).rejects.toThrow('does not decrypt');
  });

  it('two concurrent starts for one user make one run', async () => {
    const userId = env.seedUser();
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 1_500, userId });
    const [a, b] = await Promise.all([env.backups.startBackupWorkflow(userId), env.backups.startBackupWorkflow(userId)]);
    expect(a.runId).toBe(b.runId);
    expect([a.alreadyRunning, b.alreadyRunning].sort()).toEqual([false, true]);
    await env.backups.waitForBackup(userId);
    expect(env.simulator.calls.backup).toBeGreaterThan(0);
    const pairs = env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs);
    expect(pairs).toHaveLength(2);
  });

  it('rejects a malformed user id in the client, before anything starts', async () => {
    for (const bad of ['', 'a'.repeat(129), '../etc/passwd', 'user id', "x'; DROP TABLE users;--", '-leading-dash']) {
      await expect(env.backups.startBackupWorkflow(bad)).rejects.toBeInstanceOf(InvalidUserIdError);
    }
  });

  it('fails fast with UnknownUserError, before any Portal call, for a user the backend does not know', async () => {
    const before = env.simulator.calls.backup ?? 0;
    await env.backups.startBackupWorkflow(`nobody-knows-me-${provider}`);
    await expect(env.backups.waitForBackup(`nobody-knows-me-${provider}`)).rejects.toMatchObject({
      name: 'BackupFailedError',
      reasonType: 'UnknownUserError',
    });
    expect(env.simulator.calls.backup ?? 0).toBe(before);
  });
});
