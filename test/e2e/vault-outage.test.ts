import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
});
afterAll(() => env?.close());

describe('Vault unavailable for a while', () => {
  for (const mode of ['refuse', 'blackhole', 'reset'] as const) {
    it(`completes once Vault is back (${mode})`, async () => {
      const userId = env.seedUser(`vault-${mode}`);
      await env.vaultProxy.setMode(mode);
      try {
        await env.backups.startBackupWorkflow(userId);
        // The operator sees where it waits and why, while it waits.
        const status = await eventually('the encrypt step to fail at least once', async () => {
          const s = await env.backups.getBackupStatus(userId);
          return s.step === 'ENCRYPT' && (s.pendingActivity?.attempt ?? 0) >= 2 ? s : undefined;
        });
        expect(status.status).toBe('RUNNING');
        expect(status.pendingActivity).toMatchObject({ type: 'encryptShares' });
        expect(status.pendingActivity?.lastFailure).toMatch(/Vault|timed out|heartbeat/i);
      } finally {
        await env.vaultProxy.setMode('pass');
      }
      const result = await env.backups.waitForBackup(userId);
      expect(result.status).toBe('COMPLETED');
      const pairs = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
      expect(pairs).toHaveLength(2);
      expect(pairs.every((pair) => pair.status === 'completed' && pair.markCount === 1)).toBe(true);
    });
  }
});
