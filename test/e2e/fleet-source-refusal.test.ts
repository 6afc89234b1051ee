import { createServer, type Server } from 'node:http';
import { operatorSigner } from '../support/operators';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchClient } from '../../client/batch-client';
import { DrillClient } from '../../client/drill-client';
import { KeysClient } from '../../client/keys-client';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';

/**
 * A fleet run's user source that refuses a later page for good (401) pauses the run with its report
 * and cursor; once the source answers again, `resume` asks for that page and the run finishes.
 * Before, the run failed and lost its counts, problems and cursor.
 */
let env: BackupTestEnv;
let source: Server;
let url: string;
let refusing = true;
const users: string[] = [];

beforeAll(async () => {
  // Two users a page; the second page (cursor "2") answers 401 while `refusing`.
  source = createServer((request, response) => {
    const cursor = new URL(request.url!, 'http://source').searchParams.get('cursor');
    if (cursor === '2' && refusing) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"token expired"}');
      return;
    }
    const start = cursor ? Number(cursor) : 0;
    const next = start + 2 < users.length ? String(start + 2) : null;
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ userIds: users.slice(start, start + 2), nextCursor: next }));
  });
  await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(source.address() as AddressInfo).port}`;
  url = `${origin}/users`;
  env = await createBackupTestEnv({ workerEnv: { BATCH_SOURCE_ALLOWED_ORIGINS: origin } });
  await env.startWorker();
  for (let i = 0; i < 4; i += 1) users.push(env.seedUser('fleet'));
});
afterAll(async () => {
  await env?.close();
  source?.close();
});

describe('a user source that refuses a later page', () => {
  it('pauses a batch with its counts and the page; resume fetches that page again and the batch completes', async () => {
    refusing = true;
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    const { batchId } = await batches.startBatch({ source: { kind: 'http', url }, concurrency: 2, backupsPerMinute: 6000, pageSize: 2 });
    const paused = await eventually('the batch to pause on its source', async () => {
      const status = await batches.status(batchId);
      return status.status === 'PAUSED' && status.counts.completed === 2 ? status : undefined;
    });
    expect(paused.sourceRefused).toContain('page at cursor 2');
    expect(paused.sourceRefused).toContain('401');
    expect(paused.counts).toMatchObject({ started: 2, completed: 2 });

    refusing = false;
    await batches.resume(batchId, operatorSigner('ops-mallory'));
    const report = await batches.wait(batchId);
    expect(report.status).toBe('COMPLETED');
    expect(report.counts).toMatchObject({ started: 4, completed: 4 });
    expect(report.sourceRefused).toBeUndefined();
  });

  it('pauses a drill the same way; `resume` is refused while it runs and continues it once paused', async () => {
    refusing = true;
    const drills = new DrillClient(env.backups.temporal, env.taskQueue);
    const { drillId } = await drills.runOnce({ source: { kind: 'http', url }, usersPerMinute: 6_000, pageSize: 2 });
    const paused = await eventually('the drill to pause on its source', async () => {
      const report = await drills.report(drillId);
      return report.status === 'PAUSED' ? report : undefined;
    });
    expect(paused.sourceRefused).toContain('page at cursor 2');
    expect(paused.counts.checked).toBe(2);

    refusing = false;
    expect((await drills.resume(drillId, operatorSigner('ops-mallory'))).status).toBe('RUNNING');
    const report = await drills.wait(drillId);
    expect(report).toMatchObject({ status: 'COMPLETED', counts: { checked: 4 } });
    await expect(drills.resume(drillId, operatorSigner('ops-mallory'))).rejects.toThrow();
  });

  it('pauses a key rotation the same way (no new key version here: it rewraps to the latest); resume finishes it', async () => {
    refusing = true;
    const keys = new KeysClient(env.backups.temporal, env.taskQueue);
    await keys.rotate({ source: { kind: 'http', url }, rotate: false, pageSize: 2, usersPerMinute: 600 }, operatorSigner('ops-alice'));
    const paused = await eventually('the rotation to pause on its source', async () => {
      const progress = (await keys.status()).progress;
      return progress?.status === 'PAUSED' && progress.sourceRefused ? progress : undefined;
    });
    expect(paused.sourceRefused).toContain('page at cursor 2');
    refusing = false;
    await keys.resume(operatorSigner('ops-mallory'));
    const report = await keys.wait();
    expect(report.sourceRefused).toBeUndefined();
    expect(report.counts.usersVisited).toBe(4);
  });
});
