import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operatorSigner } from '../support/operators';
import { BatchClient } from '../../client/batch-client';
import { batchProgressQuery, batchWorkflowId } from '../../contracts/batch-backup-api';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;
let batches: BatchClient;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
  batches = new BatchClient(env.backups.temporal, env.taskQueue);
});
afterAll(() => env?.close());

const seedMany = (prefix: string, count: number) => Array.from({ length: count }, () => env.seedUser(prefix));
const completedPairs = (userId: string) =>
  env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs).filter((p) => p.status === 'completed');

describe('batch re-backup', () => {
  it('backs up a list in a bounded window and reports counts', async () => {
    const userIds = seedMany('list', 10);
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 3, backupsPerMinute: 6000 });
    const handle = env.backups.temporal.workflow.getHandle(batchWorkflowId(batchId));
    let maxInFlight = 0;
    const watching = (async () => {
      for (;;) {
        const progress = await handle.query(batchProgressQuery).catch(() => undefined);
        if (!progress) return;
        maxInFlight = Math.max(maxInFlight, progress.inFlight);
        if (progress.counts.completed >= userIds.length) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const report = await batches.wait(batchId);
    await watching;
    expect(report).toMatchObject({ status: 'COMPLETED', total: 10, counts: { started: 10, completed: 10, failed: 0, parked: 0 } });
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    for (const userId of userIds) expect(completedPairs(userId)).toHaveLength(2);
  });

  it('keeps history bounded: a small run size makes several continue-as-new generations', async () => {
    const userIds = seedMany('can', 7);
    const { batchId } = await batches.startBatch({
      source: { kind: 'list', userIds },
      concurrency: 2,
      backupsPerMinute: 6000,
      startsPerRun: 3,
      pageSize: 2,
    });
    const report = await batches.wait(batchId);
    expect(report.counts.completed).toBe(7);
    expect(report.runs).toBeGreaterThanOrEqual(3);
  });

  it('joins a backup that is already running instead of starting a second one', async () => {
    const [busy, other] = seedMany('join', 2) as [string, string];
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 1_500, count: 1, userId: busy });
    await env.backups.startBackupWorkflow(busy);
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds: [busy, other] }, concurrency: 5, backupsPerMinute: 6000 });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ joined: 1, started: 1, completed: 2 });
    expect(env.simulator.state.user(busy)!.wallets.flatMap((w) => w.backupSharePairs)).toHaveLength(2);
  });

  it('frees the slot of a parked backup and reports it with its reason', async () => {
    const userIds = seedMany('parked', 3);
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId: userIds[1] });
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 1, backupsPerMinute: 6000 });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ completed: 2, parked: 1, failed: 0 });
    expect(report.problems).toEqual([
      expect.objectContaining({ userId: userIds[1], status: 'NEEDS_ATTENTION', reason: expect.stringContaining('PortalAuthError') }),
    ]);
    env.simulator.faults.clear();
    await env.backups.abandonBackup(userIds[1]!, 'test over', operatorSigner('ops-mallory'));
  });

  it('reports users whose backup failed (unknown to the backend)', async () => {
    const known = env.seedUser('known');
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds: [known, 'not-a-customer'] }, concurrency: 2, backupsPerMinute: 6000 });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ completed: 1, failed: 1 });
    expect(report.problems[0]).toMatchObject({ userId: 'not-a-customer', status: 'FAILED', reason: expect.stringContaining('UnknownUserError') });
    // The reason once: the orphan scan, failing for the same reason, does not repeat it.
    const reason = report.problems[0]!.reason!;
    expect(reason.match(/unknown user/gi)?.length, reason).toBe(1);
    expect(reason).toContain('no orphaned-pair scan (it could not look for the same reason)');
  });

  it('pauses, resumes and cancels', async () => {
    const userIds = seedMany('steer', 12);
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 1, backupsPerMinute: 120 });
    await eventually('the first backup to start', async () => ((await batches.status(batchId)).counts.started >= 1 ? true : undefined));
    const paused = await batches.pause(batchId, operatorSigner('ops-mallory'));
    expect(paused.status).toBe('PAUSED');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const during = await batches.status(batchId);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect((await batches.status(batchId)).counts.started).toBe(during.counts.started);
    expect((await batches.resume(batchId, operatorSigner('ops-mallory'))).status).toBe('RUNNING');
    await eventually('more backups to start', async () =>
      (await batches.status(batchId)).counts.started > during.counts.started ? true : undefined,
    );
    await batches.cancel(batchId, operatorSigner('ops-mallory'));
    const report = await batches.wait(batchId);
    expect(report.status).toBe('CANCELLED');
    expect(report.counts.started).toBeLessThan(userIds.length);
    expect(report.counts.completed).toBe(report.counts.started);
    expect(report.inFlight).toBe(0);
  });

  it('pages the backend’s user source and skips users backed up since a given time', async () => {
    // A fresh simulator state: only these users exist in the source.
    env.simulator.state.reset();
    const userIds = seedMany('paged', 7);
    const since = new Date();
    for (const userId of userIds.slice(0, 2)) {
      await env.backups.startBackupWorkflow(userId);
      await env.backups.waitForBackup(userId);
    }
    const { batchId } = await batches.startBatch({
      source: { kind: 'http', url: `${env.simulator.url}/backend/users` },
      concurrency: 3,
      backupsPerMinute: 6000,
      skipIfBackedUpSince: since,
    });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ skipped: 2, started: 5, completed: 5 });
    expect(report.total).toBe(7);
    for (const userId of userIds) expect(completedPairs(userId)).toHaveLength(2);
  });
});
