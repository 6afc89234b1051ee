import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
});
afterAll(() => env?.close());

describe('worker process killed with SIGKILL mid-backup', () => {
  it('a new worker finishes the backup; step 1 is not repeated, nothing is marked twice', async () => {
    const userId = env.seedUser('crash');
    // Hold step 3 long enough to kill the worker while the activity is in flight.
    env.simulator.faults.add({ route: 'storeCipherText', kind: 'latency', latencyMs: 4_000, count: 1, userId });
    const first = env.spawnWorker('worker-a');
    await env.backups.startBackupWorkflow(userId);
    await eventually('step 3 to reach Portal', async () => ((env.simulator.calls.storeCipherText ?? 0) > 0 ? true : undefined), 60_000);
    await first.kill();
    expect(first.child.signalCode).toBe('SIGKILL');

    const second = env.spawnWorker('worker-b');
    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');
    const pairs = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    expect(pairs).toHaveLength(2);
    for (const pair of pairs) {
      expect(pair.status).toBe('completed');
      expect(pair.markCount).toBe(1);
    }
    expect(env.simulator.calls.backup).toBe(1);
    await second.stop();
    expect(second.child.exitCode).toBe(0);
  });
});
