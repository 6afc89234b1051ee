import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operatorSigner } from '../support/operators';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
});
afterAll(() => env?.close());

function pairsOf(userId: string) {
  return env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
}

const parked = (userId: string) => waitUntilParked(env.backups, userId);

describe('permanent errors', () => {
  it('401 at step 1 fails fast with PortalAuthError; nothing is stored or marked', async () => {
    const userId = env.seedUser('revoked');
    env.simulator.state.user(userId)!.apiKeyRevoked = true;
    const before = { backup: env.simulator.calls.backup ?? 0, getClient: env.simulator.calls.getClient ?? 0 };
    await env.backups.startBackupWorkflow(userId);
    await expect(env.backups.waitForBackup(userId)).rejects.toMatchObject({
      name: 'BackupFailedError',
      reasonType: 'PortalAuthError',
    });
    // Refused on the first Portal call (the mode check's client-object read when this worker has not
    // made one yet, else /v1/backup) and never retried; then one look for orphaned pairs (refused too).
    const backups = (env.simulator.calls.backup ?? 0) - before.backup;
    const reads = (env.simulator.calls.getClient ?? 0) - before.getClient;
    expect(backups).toBeLessThanOrEqual(1);
    expect(reads).toBeLessThanOrEqual(2);
    expect(backups + reads).toBeGreaterThanOrEqual(1);
    expect(pairsOf(userId)).toHaveLength(0);
    const status = await env.backups.getBackupStatus(userId);
    expect(status).toMatchObject({ execution: 'FAILED', status: 'FAILED', step: 'MPC_BACKUP' });
    expect(status.failure).toContain('check the client API key');
  });

  for (const [route, step] of [
    ['storeCipherText', 'STORE'],
    ['markPairs', 'MARK'],
  ] as const) {
    it(`401 at step ${step} parks as NEEDS_ATTENTION, then completes after the key is fixed and retry is sent`, async () => {
      const userId = env.seedUser(`park-${step}`);
      const rule = env.simulator.faults.add({
        route,
        kind: 'status',
        status: 401,
        body: 'Incorrect API key format',
        userId,
      });
      await env.backups.startBackupWorkflow(userId);
      const status = await parked(userId);
      expect(status.step).toBe(step);
      expect(status.execution).toBe('RUNNING');
      expect(status.progress?.lastError).toMatchObject({ step, type: 'PortalAuthError' });
      expect(status.progress?.lastError?.message).toContain('Incorrect API key format');
      expect(status.progress?.pairIds).toBeDefined();
      // The operator's list of parked backups names it with its last error.
      const listed = await eventually('the parked backup in visibility', async () =>
        (await env.backups.listBackups({ status: 'needs_attention' })).find((entry) => entry.userId === userId),
      );
      expect(listed).toMatchObject({ status: 'NEEDS_ATTENTION', step, execution: 'RUNNING', lastError: expect.stringContaining(`PortalAuthError at ${step}`) });

      // Parked means parked: nothing is retried behind the operator's back.
      const faultsBefore = rule.fired;
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(env.simulator.faults.list().find((r) => r.id === rule.id)!.fired).toBe(faultsBefore);
      expect(pairsOf(userId).every((pair) => pair.status === 'incomplete')).toBe(true);

      env.simulator.faults.clear(); // the key is fixed
      const afterRetry = await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
      expect(afterRetry.status).toBe('RUNNING');
      const result = await env.backups.waitForBackup(userId);
      expect(result.status).toBe('COMPLETED');
      const pairs = pairsOf(userId);
      expect(pairs).toHaveLength(2); // step 1 did not run again
      for (const pair of pairs) {
        expect(pair.status).toBe('completed');
        expect(pair.markCount).toBe(1);
      }
    });
  }

  it('abandon ends a parked backup with the operator’s reason; retry and abandon are refused when not parked', async () => {
    const userId = env.seedUser('abandon');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, userId });
    await env.backups.startBackupWorkflow(userId);
    await parked(userId);
    await expect(env.backups.abandonBackup(userId, '   ', operatorSigner('ops-mallory'))).rejects.toThrow(/abandon refused .* needs a reason/);
    await expect(env.backups.listBackups({ status: 'stuck' })).rejects.toThrow(/unknown status stuck: use one of RUNNING, NEEDS_ATTENTION/);
    await env.backups.abandonBackup(userId, 'wallet deleted by the user', operatorSigner('ops-mallory'));
    await expect(env.backups.waitForBackup(userId)).rejects.toMatchObject({
      reasonType: 'BackupAbandoned',
      message: expect.stringContaining('wallet deleted by the user'),
    });
    const status = await env.backups.getBackupStatus(userId);
    expect(status).toMatchObject({ execution: 'FAILED', status: 'ABANDONED', step: 'MARK' });
    env.simulator.faults.clear();

    const running = env.seedUser('not-parked');
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 1_500, count: 1, userId: running });
    await env.backups.startBackupWorkflow(running);
    await expect(env.backups.retryBackup(running, operatorSigner('ops-mallory'))).rejects.toMatchObject({
      name: 'BackupActionRejectedError',
      message: expect.stringContaining('is RUNNING, not NEEDS_ATTENTION'),
    });
    await env.backups.waitForBackup(running);
  });
});
