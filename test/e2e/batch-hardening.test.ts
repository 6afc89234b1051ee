import { createServer, type Server } from 'node:http';
import { operatorSigner } from '../support/operators';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchClient, BatchOptionsError } from '../../client/batch-client';
import { batchWorkflowId, MAX_LIST_USER_IDS, type BatchReport } from '../../contracts/batch-backup-api';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;
let batches: BatchClient;

beforeAll(async () => {
  // Portal calls held for seconds by latency faults must not time out on the client side.
  env = await createBackupTestEnv({ portalTimeoutMs: 20_000 });
  await env.startWorker();
  batches = new BatchClient(env.backups.temporal, env.taskQueue);
});
afterAll(() => env?.close());

const seedMany = (prefix: string, count: number) => Array.from({ length: count }, () => env.seedUser(prefix));
const completedPairs = (userId: string) =>
  env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs).filter((p) => p.status === 'completed');

/** The step a running backup is at (its `progress` query, through the client's status view). */
async function stepOf(userId: string): Promise<string | undefined> {
  const view = await env.backups.getBackupStatus(userId).catch(() => undefined);
  return view?.step;
}

describe('batch hardening', () => {
  it('a Temporal cancel of the batch cancels no child: backups held at STORE and MARK complete and the report lists them', async () => {
    const [atStore, atMark] = seedMany('cancel', 2) as [string, string];
    env.simulator.faults.add({ route: 'storeCipherText', kind: 'latency', latencyMs: 4_000, userId: atStore });
    env.simulator.faults.add({ route: 'markPairs', kind: 'latency', latencyMs: 4_000, userId: atMark });
    const { batchId, workflowId } = await batches.startBatch({ source: { kind: 'list', userIds: [atStore, atMark] }, concurrency: 2, backupsPerMinute: 6000 });
    await eventually('one child at STORE and the other at MARK', async () =>
      (await stepOf(atStore)) === 'STORE' && (await stepOf(atMark)) === 'MARK' ? true : undefined,
    );
    await env.backups.temporal.workflow.getHandle(workflowId).cancel();

    const report = (await batches.wait(batchId)) as BatchReport;
    expect(report.status).toBe('CANCELLED');
    expect(report.counts).toMatchObject({ started: 2, completed: 2, failed: 0, parked: 0 });
    expect(report.inFlight).toBe(0);
    for (const userId of [atStore, atMark]) {
      expect((await env.backups.getBackupStatus(userId)).execution).toBe('COMPLETED');
      expect(completedPairs(userId)).toHaveLength(2);
    }
    // The batch never asked Temporal to cancel a child.
    const history = await env.backups.temporal.workflow.getHandle(workflowId).fetchHistory();
    expect(history.events!.some((event) => event.requestCancelExternalWorkflowExecutionInitiatedEventAttributes)).toBe(false);
    env.simulator.faults.clear();
  });

  it('refuses a paged source outside the workers’ allowed origins before sending it anything', async () => {
    let requests = 0;
    const spy: Server = createServer((_request, response) => {
      requests += 1;
      response.end('{"userIds":[]}');
    });
    await new Promise<void>((resolve) => spy.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(spy.address() as AddressInfo).port}/users`;
      const { batchId } = await batches.startBatch({ source: { kind: 'http', url }, concurrency: 1, backupsPerMinute: 60 });
      await expect(batches.wait(batchId)).rejects.toThrow();
      const failure = await env.backups.temporal.workflow.getHandle(batchWorkflowId(batchId)).result().catch((error: Error & { cause?: Error & { cause?: Error } }) => error);
      expect(String((failure as { cause?: { cause?: Error } }).cause?.cause?.message)).toContain('is not an allowed origin for this worker');
      expect(requests).toBe(0);
    } finally {
      spy.close();
    }
  });

  it('refuses a list larger than one input can carry, at start, saying what to do instead', async () => {
    const userIds = Array.from({ length: MAX_LIST_USER_IDS + 1 }, (_, i) => `big-${i}`);
    await expect(batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 1, backupsPerMinute: 60 })).rejects.toThrow(BatchOptionsError);
    await expect(batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 1, backupsPerMinute: 60 })).rejects.toThrow(/paged source/);
  });

  it('continues as new on history length even when every page is skipped (no starts at all)', async () => {
    const userIds = seedMany('skipped', 10);
    const since = new Date();
    const first = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 5, backupsPerMinute: 6000 });
    await batches.wait(first.batchId);
    const { batchId } = await batches.startBatch({
      source: { kind: 'list', userIds },
      concurrency: 5,
      backupsPerMinute: 6000,
      pageSize: 1,
      skipIfBackedUpSince: since,
      maxHistoryEventsPerRun: 25,
    });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ skipped: 10, started: 0 });
    expect(report.runs).toBeGreaterThanOrEqual(3);
  });

  it('joins a running backup without holding an activity for its whole life', async () => {
    const [busy] = seedMany('joined', 1) as [string];
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 6_000, count: 1, userId: busy });
    await env.backups.startBackupWorkflow(busy);
    const { batchId, workflowId } = await batches.startBatch({ source: { kind: 'list', userIds: [busy] }, concurrency: 1, backupsPerMinute: 6000 });
    const handle = env.backups.temporal.workflow.getHandle(workflowId);
    const pendingSeen = new Set<string>();
    let looks = 0;
    for (let done = false; !done; ) {
      const description = await handle.describe();
      done = description.status.name !== 'RUNNING';
      for (const activity of description.raw.pendingActivities ?? []) pendingSeen.add(activity.activityType?.name ?? '?');
      looks += 1;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ joined: 1, completed: 1 });
    expect(looks).toBeGreaterThan(10);
    expect(pendingSeen.has('awaitBackup')).toBe(false);
    const history = await handle.fetchHistory();
    const scheduled = history.events!.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(scheduled).toContain('checkBackups');
    expect(scheduled).not.toContain('awaitBackup');
    env.simulator.faults.clear();
  });

  it('a joined backup that runs long does not hold the batch’s run open: it travels across continue-as-new', async () => {
    const [busy, other] = seedMany('long-join', 2) as [string, string];
    env.simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 12_000, count: 1, userId: busy });
    await env.backups.startBackupWorkflow(busy);
    const { batchId, workflowId } = await batches.startBatch({
      source: { kind: 'list', userIds: [busy, other] },
      concurrency: 2,
      backupsPerMinute: 6000,
      maxHistoryEventsPerRun: 20,
    });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ joined: 1, started: 1, completed: 2 });
    expect(report.runs).toBeGreaterThanOrEqual(2);
    const runs = [];
    for await (const run of env.backups.temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push(run);
    const firstClosed = Math.min(...runs.map((run) => run.closeTime?.getTime() ?? Infinity));
    const busyClosed = (await env.backups.temporal.workflow.getHandle(`backup-${busy}`).describe()).closeTime!.getTime();
    expect(firstClosed).toBeLessThan(busyClosed);
    env.simulator.faults.clear();
  });

  it('a backup that parked before a continue-as-new and completes after an operator\'s retry is counted completed, not parked', async () => {
    const [parks, slow] = seedMany('parked-across-runs', 2) as [string, string];
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId: parks });
    // Keeps the batch running (its next run's child) until the parked one has been retried and seen.
    const hold = env.simulator.faults.add({ route: 'storeCipherText', kind: 'hang', latencyMs: 300_000, userId: slow });
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds: [parks, slow] }, concurrency: 1, backupsPerMinute: 6000, startsPerRun: 1 });
    await eventually('the first backup to park', async () => ((await batches.status(batchId)).counts.parked === 1 ? true : undefined));
    await eventually('the batch to continue as new', async () => ((await batches.status(batchId)).runs >= 2 ? true : undefined));
    env.simulator.faults.clear();
    env.simulator.faults.add({ route: 'storeCipherText', kind: 'hang', latencyMs: 300_000, userId: slow });
    await env.backups.retryBackup(parks, operatorSigner('ops-mallory'));
    await env.backups.waitForBackup(parks);
    // The next run watches it (polls back off to a few minutes at most).
    const seen = await eventually(
      'the batch to count the retried backup as completed',
      async () => {
        const status = await batches.status(batchId);
        return status.counts.parked === 0 ? status : undefined;
      },
      240_000,
    );
    expect(seen.counts).toMatchObject({ started: 2, completed: 1, parked: 0 });
    env.simulator.faults.remove(hold.id);
    env.simulator.faults.clear();
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ started: 2, completed: 2, parked: 0, failed: 0 });
  }, 360_000);

  it('lists every problem of a batch from visibility, with its reason', async () => {
    const userIds = seedMany('problems', 3);
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId: userIds[0] });
    const { batchId } = await batches.startBatch({ source: { kind: 'list', userIds: [...userIds, 'never-a-customer'] }, concurrency: 4, backupsPerMinute: 6000 });
    const report = await batches.wait(batchId);
    expect(report.counts).toMatchObject({ completed: 2, parked: 1, failed: 1 });
    const problems = await eventually('visibility to list both problems', async () => {
      const listed = await batches.listProblems(batchId);
      return listed.length === 2 ? listed : undefined;
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ userId: userIds[0], status: 'NEEDS_ATTENTION', reason: expect.stringContaining('PortalAuthError') }),
        expect.objectContaining({ userId: 'never-a-customer', status: 'FAILED', reason: expect.stringContaining('could not start') }),
      ]),
    );
    env.simulator.faults.clear();
    await env.backups.abandonBackup(userIds[0]!, 'test over', operatorSigner('ops-mallory'));
  });
});

