import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ManagedProcess } from '../../stack/managed-process';
import { startTemporalDevServer, type TemporalDevServer } from '../../stack/temporal-dev-server';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let temporal: TemporalDevServer;
let env: BackupTestEnv;
let worker: ManagedProcess;
let dir: string;

beforeAll(async () => {
  dir = join(inject('runDir'), `temporal-restart-${randomBytes(4).toString('hex')}`);
  temporal = await startTemporalDevServer({ logFile: join(dir, 'temporal.log'), dbFile: join(dir, 'temporal.db') });
  env = await createBackupTestEnv({ temporalAddress: temporal.address });
  worker = env.spawnWorker('survivor');
});
afterAll(async () => {
  await env?.close();
  await temporal?.stop();
});

describe('Temporal server killed and restarted on its database', () => {
  it('the same worker process reconnects and finishes the backups that were in flight', async () => {
    const userIds = [env.seedUser('restart'), env.seedUser('restart')];
    for (const userId of userIds) {
      env.simulator.faults.add({ route: 'storeCipherText', kind: 'latency', latencyMs: 1_500, count: 1, userId });
      await env.backups.startBackupWorkflow(userId);
    }
    await eventually('step 3 to reach Portal', async () => ((env.simulator.calls.storeCipherText ?? 0) > 0 ? true : undefined));
    const pid = worker.child.pid;
    await temporal.restart();
    for (const userId of userIds) expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    expect(worker.child.pid).toBe(pid);
    expect(worker.child.exitCode).toBeNull();
    for (const userId of userIds) {
      const pairs = env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
      expect(pairs.filter((pair) => pair.status === 'completed')).toHaveLength(2);
    }
  });

  it('a worker process started while Temporal is down waits for it (it exited), then polls and runs backups', async () => {
    await worker.stop();
    await temporal.stop();
    const late = env.spawnWorker('started-before-temporal');
    await eventually('the worker to report that Temporal cannot be reached', async () =>
      existsSync(late.logFile) && readFileSync(late.logFile, 'utf8').includes('cannot be reached') ? true : undefined,
    );
    expect(late.child.exitCode).toBeNull();
    // The same server again: same port, same database file.
    temporal = await startTemporalDevServer({ logFile: join(dir, 'temporal-2.log'), dbFile: join(dir, 'temporal.db'), port: temporal.port });
    const userId = env.seedUser('late-worker');
    await env.backups.startBackupWorkflow(userId);
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    expect(late.child.exitCode).toBeNull();
    await late.stop();
  });
});
