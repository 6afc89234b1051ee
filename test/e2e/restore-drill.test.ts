import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BatchClient } from '../../client/batch-client';
import { DrillClient } from '../../client/drill-client';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { createDatabasePool } from '../../db/pool';
import { BackupStatusKey, BackupStepKey } from '../../contracts/backup-wallet-api';
import { DrillIdKey, drillFindingWorkflowId, type DrillReport } from '../../contracts/restore-drill-api';
import { createWebhookServer } from '../../webhook/webhook-server';
import { capturedLogs, createBackupTestEnv, eventually, kmsForTest, KMS_PROVIDERS, type BackupTestEnv } from '../support/backup-test-env';
import { secretsOf } from '../../chaos/secret-scan';

/**
 * The restore drill end to end on the real servers: backups made by the service, then damaged in
 * the store (a ciphertext altered, one stored under the wrong pair) and, in Self-Managed mode, a
 * custodian share row deleted; the drill finds each with its reason, marks exactly those users in
 * visibility, never calls /v1/recover, and one call re-backs them up.
 */

/** The same ciphertext with one character of its base64 body changed (so one byte differs). */
function tampered(ciphertext: string): string {
  const index = ciphertext.length - 6;
  return `${ciphertext.slice(0, index)}${ciphertext[index] === 'A' ? 'B' : 'A'}${ciphertext.slice(index + 1)}`;
}

async function backUp(env: BackupTestEnv, prefix: string) {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  const { pairIds } = await env.backups.waitForBackup(userId);
  return { userId, pairIds, client: env.simulator.state.user(userId)! };
}

/** The findings visibility lists for a drill, as an operator filters them in the Web UI. */
async function markedInVisibility(env: BackupTestEnv, drillId: string, expected: number) {
  return eventually(`${expected} findings of ${drillId} in visibility`, async () => {
    const found: { workflowId: string; status?: string; step?: string; drillId?: string }[] = [];
    for await (const execution of env.backups.temporal.workflow.list({ query: `BackupStatus = 'DRILL_FAILED' AND DrillId = '${drillId}'` })) {
      found.push({
        workflowId: execution.workflowId,
        status: execution.typedSearchAttributes.get(BackupStatusKey),
        step: execution.typedSearchAttributes.get(BackupStepKey),
        drillId: execution.typedSearchAttributes.get(DrillIdKey),
      });
    }
    return found.length >= expected ? found.sort((a, b) => a.workflowId.localeCompare(b.workflowId)) : undefined;
  });
}

async function adminCalls(env: BackupTestEnv): Promise<Record<string, number>> {
  return (await (await fetch(`${env.simulator.url}/admin/calls`)).json()) as Record<string, number>;
}

const failureOf = (report: DrillReport, userId: string) => report.failures.find((failure) => failure.userId === userId);

describe.each(KMS_PROVIDERS)('restore drill, Portal-Managed (ciphertexts at Portal; KMS_PROVIDER=%s)', (provider) => {
  let env: BackupTestEnv;
  let drills: DrillClient;

  beforeAll(async () => {
    env = await createBackupTestEnv({ kms: provider });
    await env.startWorker();
    drills = new DrillClient(env.backups.temporal, env.taskQueue);
  });
  afterAll(() => env?.close());

  it('finds a ciphertext tampered with and one stored under the wrong pair, marks exactly those users, and re-backs them up', async () => {
    const sound = await backUp(env, 'sound');
    const altered = await backUp(env, 'altered');
    const moved = await backUp(env, 'moved');
    const never = env.seedUser('never');
    const pairOf = (user: typeof sound, curve: 'SECP256K1' | 'ED25519') => env.simulator.state.findPair(user.client, user.pairIds[curve])!;
    pairOf(altered, 'SECP256K1').clientCipherText = tampered(pairOf(altered, 'SECP256K1').clientCipherText!);
    pairOf(moved, 'ED25519').clientCipherText = pairOf(moved, 'SECP256K1').clientCipherText;
    const userIds = [sound.userId, altered.userId, moved.userId, never];

    const { drillId } = await drills.runOnce({ source: { kind: 'list', userIds }, usersPerMinute: 6_000 });
    const report = await drills.wait(drillId);

    expect(report).toMatchObject({ drillId, status: 'COMPLETED', total: 4, counts: { checked: 4, passed: 1, failed: 2, skipped: 1, inconclusive: 0 } });
    // The report names the skipped user and why, not only the count.
    expect(report.skipped).toEqual([{ userId: never, reason: 'no completed backup at Portal' }]);
    expect(report.failures).toHaveLength(2);
    expect(failureOf(report, altered.userId)).toMatchObject({
      kind: 'CIPHERTEXT_INVALID',
      reason: expect.stringContaining(`SECP256K1 pair ${altered.pairIds.SECP256K1} does not decrypt in the context of user ${altered.userId}`),
    });
    expect(failureOf(report, moved.userId)).toMatchObject({
      kind: 'CIPHERTEXT_WRONG_PAIR',
      reason: `ED25519 pair ${moved.pairIds.ED25519}: the store holds the ciphertext of SECP256K1 pair ${moved.pairIds.SECP256K1} (completed) under this pair`,
    });

    // Marked for operators: `BackupStatus = "DRILL_FAILED"` (and this drill's id) lists exactly the two.
    const marked = await markedInVisibility(env, drillId, 2);
    expect(marked).toEqual(
      [
        { workflowId: drillFindingWorkflowId(drillId, altered.userId), status: 'DRILL_FAILED', step: 'CIPHERTEXT_INVALID', drillId },
        { workflowId: drillFindingWorkflowId(drillId, moved.userId), status: 'DRILL_FAILED', step: 'CIPHERTEXT_WRONG_PAIR', drillId },
      ].sort((a, b) => a.workflowId.localeCompare(b.workflowId)),
    );
    const listed = await drills.listFailures(drillId);
    expect(listed.map(({ userId, kind, reason }) => ({ userId, kind, reason })).sort((a, b) => a.userId.localeCompare(b.userId))).toEqual(
      report.failures.map(({ userId, kind, reason }) => ({ userId, kind, reason })).sort((a, b) => a.userId.localeCompare(b.userId)),
    );

    // In the workers' logs too, with ids and reasons only.
    const logged = capturedLogs.filter((line) => line.includes('restore drill: a stored backup fails') && line.includes(drillId));
    expect(logged.some((line) => line.includes(moved.userId) && line.includes('CIPHERTEXT_WRONG_PAIR'))).toBe(true);
    expect(logged.some((line) => line.includes(altered.userId) && line.includes('CIPHERTEXT_INVALID'))).toBe(true);
    const secrets = [sound, altered, moved].flatMap((user) => secretsOf(user.client));
    for (const text of [...logged, JSON.stringify(report), JSON.stringify(listed)]) for (const secret of secrets) expect(text).not.toContain(secret);

    // The drill read, and never recovered.
    const calls = await adminCalls(env);
    expect(calls.recover ?? 0).toBe(0);
    expect(calls.getCipherText).toBeGreaterThanOrEqual(6);

    // One call starts a batch over exactly the failed users; the sound one is not backed up again.
    const rebackup = await drills.rebackupFailures(drillId, { backupsPerMinute: 6_000 });
    expect(rebackup).toMatchObject({ drillId, users: 2, batches: [{ users: 2, alreadyStarted: false }] });
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    const batchReport = await batches.wait(rebackup.batches[0]!.batchId);
    expect(batchReport).toMatchObject({ total: 2, counts: { started: 2, completed: 2, failed: 0 } });
    const backupsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs).length;
    expect([backupsOf(sound.userId), backupsOf(altered.userId), backupsOf(moved.userId)]).toEqual([2, 4, 4]);

    // Asked again: both users were backed up after the drill found them, so the batch skips them.
    const again = await drills.rebackupFailures(drillId, { backupsPerMinute: 6_000 });
    expect((await batches.wait(again.batches[0]!.batchId)).counts).toMatchObject({ started: 0, skipped: 2 });

    // And the next drill finds every backup sound.
    const next = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds }, usersPerMinute: 6_000 })).drillId);
    expect(next.counts).toEqual({ checked: 4, passed: 3, failed: 0, skipped: 1, inconclusive: 0 });
    expect((await adminCalls(env)).recover ?? 0).toBe(0);
  });

  it('waits out a KMS outage (the check is retried by Temporal) instead of reporting failures', async () => {
    const user = await backUp(env, 'outage');
    await env.kmsProxy.setMode('refuse');
    const { drillId } = await drills.runOnce({ source: { kind: 'list', userIds: [user.userId] }, usersPerMinute: 6_000 });
    try {
      await eventually('the check to be retried', async () => {
        const description = await env.backups.temporal.workflow.getHandle(drillId).describe();
        const pending = description.raw.pendingActivities?.[0];
        return pending && (pending.attempt ?? 0) >= 2 ? true : undefined;
      });
      expect((await drills.report(drillId)).counts).toMatchObject({ checked: 0, failed: 0 });
    } finally {
      await env.kmsProxy.setMode('pass');
    }
    const report = await drills.wait(drillId);
    expect(report.counts).toEqual({ checked: 1, passed: 1, failed: 0, skipped: 0, inconclusive: 0 });
  }, 120_000);
});

describe('restore drill, pacing and schedule', () => {
  let env: BackupTestEnv;
  let drills: DrillClient;

  beforeAll(async () => {
    env = await createBackupTestEnv();
    await env.startWorker();
    drills = new DrillClient(env.backups.temporal, env.taskQueue);
  });
  afterAll(() => env?.close());

  it('checks users no faster than the rate it was given', async () => {
    const userIds = Array.from({ length: 5 }, () => env.seedUser('paced'));
    // 120 users a minute, one per check: four waits of 500 ms between the five checks.
    const report = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds }, usersPerMinute: 120, pageSize: 1 })).drillId);
    expect(report.counts).toMatchObject({ checked: 5, skipped: 5 });
    expect(Date.parse(report.finishedAt!) - Date.parse(report.startedAt)).toBeGreaterThanOrEqual(2_000);
  });

  it('counts no verdict completed from outside: a check completed by id with "passed" for a damaged backup leaves that user inconclusive, never passed', async () => {
    const damaged = await backUp(env, 'forged-pass');
    const pair = env.simulator.state.findPair(damaged.client, damaged.pairIds.SECP256K1)!;
    pair.clientCipherText = tampered(pair.clientCipherText!);
    // The check is held at its first Portal call for this user, so it is still running when forged.
    const hold = env.simulator.faults.add({ route: 'getClient', kind: 'hang', latencyMs: 60_000, userId: damaged.userId });
    const { drillId } = await drills.runOnce({ source: { kind: 'list', userIds: [damaged.userId] }, usersPerMinute: 6_000 });
    const activityId = await eventually('the check to run', async () => {
      const { raw } = await env.backups.temporal.workflow.getHandle(drillId).describe();
      return raw.pendingActivities?.find((a) => a.activityType?.name === 'checkDrillUsers' && a.lastStartedTime)?.activityId ?? undefined;
    });
    // Encoded with the client's codec key, with a well-formed receipt it could not have made.
    const forged = [{ userId: damaged.userId, outcome: 'passed', receipt: { step: 'DRILL_VERDICT', keyId: 'test-seal-1', mac: 'c'.repeat(64) } }];
    await env.backups.temporal.activity.complete({ workflowId: drillId, activityId }, forged);
    env.simulator.faults.remove(hold.id);

    const report = await drills.wait(drillId);
    expect(report.counts).toMatchObject({ checked: 1, passed: 0, failed: 0, inconclusive: 1 });
    expect(report.inconclusive).toEqual([{ userId: damaged.userId, reason: expect.stringContaining('not made by a worker of this drill') }]);
    // Checked again, the damage is found.
    const again = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds: [damaged.userId] }, usersPerMinute: 6_000 })).drillId);
    expect(again.counts).toMatchObject({ checked: 1, passed: 0, failed: 1 });
    expect(failureOf(again, damaged.userId)).toMatchObject({ kind: 'CIPHERTEXT_INVALID' });
  });

  it('refuses a drill started without the payload codec (e.g. from the Web UI): nothing is checked', async () => {
    const userId = env.seedUser('plain');
    const before = env.simulator.calls.getClient ?? 0;
    const workflowId = `drill-plain-${randomBytes(3).toString('hex')}`;
    const handle = await env.rawClient.workflow.start('restoreDrill', {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ source: { kind: 'list', userIds: [userId] }, usersPerMinute: 6_000 }],
    });
    const failure = await env.backups.temporal.workflow
      .getHandle(workflowId)
      .result()
      .catch((error: { cause?: Error }) => error.cause);
    expect(String(failure?.message)).toContain('was not encrypted with the payload codec');
    expect((await handle.fetchHistory()).events!.some((event) => event.activityTaskScheduledEventAttributes)).toBe(false);
    expect(env.simulator.calls.getClient ?? 0).toBe(before);
  });

  it('runs on a Temporal Schedule: created, run now, updated, reported, deleted', async () => {
    const sound = await backUp(env, 'scheduled');
    const scheduleId = `test-${randomBytes(3).toString('hex')}`;
    const created = await drills.schedule({ every: '24h', scheduleId, runNow: true, source: { kind: 'list', userIds: [sound.userId] }, usersPerMinute: 6_000 });
    expect(created).toMatchObject({ scheduleId, every: '24h', created: true });
    expect(created.nextRuns).toHaveLength(3);
    const drillId = await eventually('the scheduled drill to start', async () => {
      const description = await env.backups.temporal.schedule.getHandle(scheduleId).describe();
      return description.info.recentActions[0]?.action.workflow.workflowId;
    });
    expect(drillId.startsWith(`drill-${scheduleId}-`)).toBe(true);
    const report = await drills.wait(drillId);
    expect(report).toMatchObject({ drillId, counts: { checked: 1, passed: 1, failed: 0 } });
    expect(await eventually('the drill in visibility', async () => ((await drills.latestDrillId()) === drillId ? drillId : undefined))).toBe(drillId);

    const updated = await drills.schedule({ every: '12h', scheduleId, source: { kind: 'list', userIds: [sound.userId] } });
    expect(updated).toMatchObject({ created: false, every: '12h' });
    const spec = (await env.backups.temporal.schedule.getHandle(scheduleId).describe()).spec;
    expect(spec.intervals?.[0]?.every).toBe(12 * 3_600_000);
    expect(await drills.unschedule(scheduleId)).toBe(true);
    expect(await drills.unschedule(scheduleId)).toBe(false);
  });
});

describe.each(KMS_PROVIDERS)('restore drill, Self-Managed (PostgreSQL store, custodian shares held by the webhook; KMS_PROVIDER=%s)', (provider) => {
  const secret = `whsec-${randomBytes(12).toString('hex')}`;
  let pool: Pool;
  let webhook: FastifyInstance;
  let env: BackupTestEnv;
  let drills: DrillClient;

  beforeAll(async () => {
    pool = createDatabasePool(inject('databaseUrl'));
    // The webhook encrypts custodian shares with the workers' KMS key (its own credentials, no proxy).
    const kmsKeySuffix = `drill-sm-${randomBytes(4).toString('hex')}`;
    const { admin } = await kmsForTest(provider, { vaultPort: 0, kmsPort: 0, keySuffix: kmsKeySuffix });
    webhook = createWebhookServer({
      records: new CustodianShareRepository(pool),
      transit: admin,
      secrets: [secret],
      deadlineMs: 8_000,
      bodyLimitBytes: 64 * 1024,
      logger: pino({ level: 'silent' }),
    });
    const webhookUrl = await webhook.listen({ host: '127.0.0.1', port: 0 });
    env = await createBackupTestEnv({
      kms: provider,
      kmsKeySuffix,
      simulator: { selfManaged: { webhookUrl, webhookSecret: secret } },
      workerEnv: { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: inject('databaseUrl') },
    });
    await env.startWorker();
    drills = new DrillClient(env.backups.temporal, env.taskQueue);
  });
  afterAll(async () => {
    await env?.close();
    await webhook?.close();
    await pool?.end();
  });

  it('pages the backend’s users, finds a missing custodian share and a tampered ciphertext in PostgreSQL, and marks them', async () => {
    const sound = await backUp(env, 'sm-sound');
    const noCustodian = await backUp(env, 'sm-no-custodian');
    const altered = await backUp(env, 'sm-altered');
    env.seedUser('sm-never');
    const deleted = await pool.query('DELETE FROM custodian_shares WHERE client_id = $1 AND pair_id = $2', [noCustodian.client.clientId, noCustodian.pairIds.ED25519]);
    expect(deleted.rowCount).toBe(1);
    const row = await pool.query('SELECT ciphertext FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [altered.userId, altered.pairIds.ED25519]);
    await pool.query('UPDATE client_ciphertexts SET ciphertext = $3 WHERE user_id = $1 AND pair_id = $2', [
      altered.userId,
      altered.pairIds.ED25519,
      tampered((row.rows[0] as { ciphertext: string }).ciphertext),
    ]);

    // The simulator's backend route lists exactly this file's users, two per page; one check per run.
    const { drillId } = await drills.runOnce({ source: { kind: 'http', url: `${env.simulator.url}/backend/users` }, usersPerMinute: 6_000, pageSize: 2, checksPerRun: 1 });
    const report = await drills.wait(drillId);

    expect(report).toMatchObject({ status: 'COMPLETED', total: 4, counts: { checked: 4, passed: 1, failed: 2, skipped: 1, inconclusive: 0 } });
    expect(report.runs).toBeGreaterThanOrEqual(3);
    expect(failureOf(report, noCustodian.userId)).toMatchObject({
      kind: 'CUSTODIAN_SHARE_MISSING',
      reason: `ED25519 pair ${noCustodian.pairIds.ED25519}: no custodian share is held for client ${noCustodian.client.clientId}`,
    });
    expect(failureOf(report, altered.userId)).toMatchObject({
      kind: 'CIPHERTEXT_INVALID',
      reason: expect.stringContaining(`ED25519 pair ${altered.pairIds.ED25519} does not decrypt in the context of user ${altered.userId}`),
    });
    expect(failureOf(report, sound.userId)).toBeUndefined();

    const marked = await markedInVisibility(env, drillId, 2);
    expect(marked.map((finding) => [finding.workflowId, finding.step])).toEqual(
      [
        [drillFindingWorkflowId(drillId, noCustodian.userId), 'CUSTODIAN_SHARE_MISSING'],
        [drillFindingWorkflowId(drillId, altered.userId), 'CIPHERTEXT_INVALID'],
      ].sort((a, b) => a[0]!.localeCompare(b[0]!)),
    );
    expect((await adminCalls(env)).recover ?? 0).toBe(0);

    const rebackup = await drills.rebackupFailures(drillId, { backupsPerMinute: 6_000 });
    expect(rebackup.users).toBe(2);
    const batchReport = await new BatchClient(env.backups.temporal, env.taskQueue).wait(rebackup.batches[0]!.batchId);
    expect(batchReport.counts).toMatchObject({ started: 2, completed: 2 });
  }, 180_000);
});
