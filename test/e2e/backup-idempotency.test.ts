import { randomUUID } from 'node:crypto';
import { operatorSigner } from '../support/operators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupNotFoundError } from '../../client/backup-client';
import { InvalidIdempotencyKeyError } from '../../domain/idempotency-key';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

/**
 * A second start after the first run closed is a new backup, by design; a backend that retries its
 * own call passes an idempotency key, and the same key returns the run its request started (the
 * real Temporal dev server, a real worker). "No second backup" is counted where it would show: the
 * pairs Portal made for the user (one per curve per backup) and the user's latest run.
 */
let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
});
afterAll(() => env?.close());

const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);

/** Waits until visibility lists `count` closed runs of the user (its records are written after the run's own). */
const closedRunsListed = (userId: string, count: number) =>
  eventually(`${count} closed runs of ${userId} in visibility`, async () => {
    let closed = 0;
    for await (const run of env.backups.temporal.workflow.list({ query: `WorkflowId = 'backup-${userId}'` })) {
      if (run.status.name !== 'RUNNING') closed += 1;
    }
    return closed === count ? true : undefined;
  });

describe('startBackupWorkflow with an idempotency key', () => {
  it('returns the closed run of the same key instead of a second backup; a different key starts a new one', async () => {
    const userId = env.seedUser('idem');
    const key = randomUUID();
    const first = await env.backups.startBackupWorkflow(userId, { idempotencyKey: key });
    expect(first).toMatchObject({ alreadyRunning: false, idempotentReplay: false });
    const result = await env.backups.waitForBackup(userId);
    expect(pairsOf(userId)).toHaveLength(2);

    // The backend's retry of the same request, after the run closed.
    const retried = await env.backups.startBackupWorkflow(userId, { idempotencyKey: key });
    expect(retried).toEqual({ userId, workflowId: `backup-${userId}`, runId: first.runId, alreadyRunning: false, idempotentReplay: true });
    expect(pairsOf(userId)).toHaveLength(2);
    expect((await env.backups.getBackupStatus(userId)).runId).toBe(first.runId);
    expect(await env.backups.waitForBackup(userId, retried.runId)).toEqual(result);

    // Another request: a new backup.
    const other = await env.backups.startBackupWorkflow(userId, { idempotencyKey: randomUUID() });
    expect(other).toMatchObject({ alreadyRunning: false, idempotentReplay: false });
    expect(other.runId).not.toBe(first.runId);
    await env.backups.waitForBackup(userId);
    expect(pairsOf(userId)).toHaveLength(4);

    // The first key again, now that its run is no longer the latest: found through visibility.
    await closedRunsListed(userId, 2);
    const late = await env.backups.startBackupWorkflow(userId, { idempotencyKey: key });
    expect(late).toMatchObject({ runId: first.runId, idempotentReplay: true });
    expect(pairsOf(userId)).toHaveLength(4);
    expect((await env.backups.getBackupStatus(userId)).runId).toBe(other.runId);
  });

  it('without a key, a start after the run closed is a new backup (by design)', async () => {
    const userId = env.seedUser('idem-none');
    const first = await env.backups.startBackupWorkflow(userId);
    await env.backups.waitForBackup(userId);
    const second = await env.backups.startBackupWorkflow(userId);
    expect(second).toMatchObject({ alreadyRunning: false, idempotentReplay: false });
    expect(second.runId).not.toBe(first.runId);
    await env.backups.waitForBackup(userId);
    expect(pairsOf(userId)).toHaveLength(4);
  });

  it('returns the running backup for the same key, and for another key too (one running backup per user)', async () => {
    const userId = env.seedUser('idem-running');
    const key = randomUUID();
    // Parked at step 4 until the operator retries: running for as long as the test needs.
    const rule = env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, body: 'Invalid or revoked API key', userId });
    const first = await env.backups.startBackupWorkflow(userId, { idempotencyKey: key });
    await waitUntilParked(env.backups, userId);

    const same = await env.backups.startBackupWorkflow(userId, { idempotencyKey: key });
    expect(same).toMatchObject({ runId: first.runId, alreadyRunning: true, idempotentReplay: true });
    const other = await env.backups.startBackupWorkflow(userId, { idempotencyKey: randomUUID() });
    expect(other).toMatchObject({ runId: first.runId, alreadyRunning: true, idempotentReplay: false });
    expect(pairsOf(userId)).toHaveLength(2);

    env.simulator.faults.remove(rule.id);
    await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
    await env.backups.waitForBackup(userId);
    expect((await env.backups.startBackupWorkflow(userId, { idempotencyKey: key })).runId).toBe(first.runId);
    expect(pairsOf(userId)).toHaveLength(2);
  });

  it('refuses a malformed key with InvalidIdempotencyKeyError before anything reaches Temporal', async () => {
    const userId = env.seedUser('idem-bad');
    for (const key of ['', 'has space', 'x'.repeat(129)]) {
      await expect(env.backups.startBackupWorkflow(userId, { idempotencyKey: key })).rejects.toBeInstanceOf(InvalidIdempotencyKeyError);
    }
    await expect(env.backups.getBackupStatus(userId)).rejects.toBeInstanceOf(BackupNotFoundError);
  });
});
