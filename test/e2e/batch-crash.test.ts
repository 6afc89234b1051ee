import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchClient } from '../../client/batch-client';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
});
afterAll(() => env?.close());

describe('a batch whose worker is SIGKILLed mid-run', () => {
  it('resumes where it was with a new worker: every user backed up once, no ciphertext stranded', async () => {
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    const userIds = Array.from({ length: 8 }, () => env.seedUser('batch-crash'));
    const first = env.spawnWorker('batch-a');
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 2, backupsPerMinute: 120 });
    await eventually('three backups to start', async () => ((await batches.status(batchId)).counts.started >= 3 ? true : undefined), 60_000);
    await first.kill();
    const before = await batches.status(batchId).catch(() => undefined);
    env.spawnWorker('batch-b');
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ started: 8, completed: 8, failed: 0, parked: 0 });
    expect(before?.counts.completed ?? 0).toBeLessThan(8);
    for (const userId of userIds) {
      const pairs = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
      const completed = pairs.filter((pair) => pair.status === 'completed');
      expect(completed).toHaveLength(2);
      // A kill right after Portal committed a mark may repeat that mark: same pairs, same run.
      expect(completed.every((pair) => pair.markCount >= 1 && pair.clientCipherText)).toBe(true);
      expect(pairs.filter((pair) => pair.status === 'incomplete' && pair.clientCipherText)).toEqual([]);
    }
  });
});
