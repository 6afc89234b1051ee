import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv({ simulator: { rejectRepeatedMarks: true } });
  await env.startWorker();
});
afterAll(() => env?.close());

describe('a stricter Portal and an operator cancel', () => {
  it('a lost mark response, then a 400 "already completed" on the retry: the backup completes, not parks', async () => {
    const userId = env.seedUser('strict');
    env.simulator.faults.add({ route: 'markPairs', kind: 'lost-response', count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    const result = await env.backups.waitForBackup(userId);
    expect(result.status).toBe('COMPLETED');
    const pairs = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    expect(pairs.every((pair) => pair.status === 'completed' && pair.markCount === 1)).toBe(true);
  });

  it('cancelling a parked backup closes it as CANCELLED instead of leaving it NEEDS_ATTENTION', async () => {
    const userId = env.seedUser('cancel');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    await env.backups.startBackupWorkflow(userId);
    await eventually('the backup to park', async () =>
      (await env.backups.getBackupStatus(userId)).status === 'NEEDS_ATTENTION' ? true : undefined,
    );
    await env.backups.temporal.workflow.getHandle(`backup-${userId}`).cancel();
    const status = await eventually('the run to close', async () => {
      const s = await env.backups.getBackupStatus(userId);
      return s.execution === 'RUNNING' ? undefined : s;
    });
    expect(status).toMatchObject({ execution: 'CANCELLED', status: 'CANCELLED', step: 'MARK' });
    env.simulator.faults.clear();
  });
});
