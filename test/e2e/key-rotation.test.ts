import { createHash, randomBytes } from 'node:crypto';
import { operatorSigner } from '../support/operators';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import nodeVault from 'node-vault';
import type { Pool } from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sharePlaintext } from '../../activities';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { ciphertextVersion } from '../../adapters/kms/kms-ciphertext';
import type { KmsProvider, KmsProviderKind } from '../../adapters/kms/kms-provider';
import { KeysClient } from '../../client/keys-client';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { createDatabasePool } from '../../db/pool';
import { keyRotationPolicy, operatorVerifyPolicy } from '../../stack/vault-policies';
import { waitForPollers } from '../../stack/worker-process';
import { createWebhookServer } from '../../webhook/webhook-server';
import { emptyRotationCounts, KEY_ROTATION_WORKFLOW_ID } from '../../contracts/rotate-keys-api';
import { createBackupTestEnv, eventually, kmsForTest, KMS_PROVIDERS, type BackupTestEnv } from '../support/backup-test-env';
import { openCopyRepair } from '../../client/cli-copies';
import { repairCopies } from '../../client/copy-repair';
import { loadCopyRepairConfig } from '../../client/copy-repair-config';

/**
 * `backup keys rotate` end to end on the real servers: workers holding only the rotation policy
 * (stack/vault-policies.ts) on a Transit key of this file's own (the suite's shared key must not
 * change under the other test files), backups made by the real workflow, then rotations.
 */
type VaultAdmin = ReturnType<typeof nodeVault>;
let admin: VaultAdmin;

beforeAll(() => {
  admin = nodeVault({ endpoint: inject('vaultAddr'), token: inject('vaultToken'), debug: () => undefined } as nodeVault.VaultOptions);
});

const hex = () => randomBytes(3).toString('hex');
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * A key of this test's own, with what the workers need to use it and an admin view of it. Vault: a
 * fresh derived Transit key and a token holding only the rotation policy for it. AWS KMS: a fresh
 * alias on local-kms, version 1 created (local-kms has no IAM: the workers' credentials may do all).
 */
async function rotationKeyOf(provider: KmsProviderKind): Promise<{ keyName: string; workerEnv: NodeJS.ProcessEnv; kmsKeySuffix?: string; root: KmsProvider }> {
  if (provider === 'vault-transit') {
    const key = await rotationKey();
    return { keyName: key.keyName, workerEnv: { VAULT_TRANSIT_KEY: key.keyName, VAULT_TOKEN: key.token }, root: rootTransit(key.keyName) };
  }
  const kmsKeySuffix = `rotation-e2e-${hex()}`;
  const { admin: root } = await kmsForTest('aws-kms', { vaultPort: 0, kmsPort: 0, keySuffix: kmsKeySuffix });
  return { keyName: root.keyName, workerEnv: {}, kmsKeySuffix, root };
}

/** A fresh derived key and a token holding only the rotation policy for it. */
async function rotationKey(): Promise<{ keyName: string; token: string }> {
  const keyName = `rotation-e2e-${hex()}`;
  await admin.write(`transit/keys/${keyName}`, { type: 'aes256-gcm96', derived: true });
  // The workers also verify the approver's signed start (docs/operations.md, "Operators and approvals").
  await admin.addPolicy({ name: `mpc-backup-rotation-${keyName}`, rules: `${keyRotationPolicy(keyName)}\n${operatorVerifyPolicy()}` });
  const created = (await admin.tokenCreate({ policies: [`mpc-backup-rotation-${keyName}`], ttl: '2h' })) as { auth: { client_token: string } };
  // node-vault adopts the token of any response that carries one: keep the admin on root.
  admin.token = inject('vaultToken');
  return { keyName, token: created.auth.client_token };
}

/** A test env whose workers rotate a key of their own, and a keys client on it. */
async function rotationTestEnv(provider: KmsProviderKind, options: { portalTimeoutMs?: number; workerEnv?: NodeJS.ProcessEnv } = {}) {
  const key = await rotationKeyOf(provider);
  const { workerEnv, ...rest } = options;
  const env = await createBackupTestEnv({ ...rest, kms: provider, ...(key.kmsKeySuffix ? { kmsKeySuffix: key.kmsKeySuffix } : {}), workerEnv: { ...workerEnv, ...key.workerEnv } });
  return { env, keyName: key.keyName, root: key.root, keys: new KeysClient(env.backups.temporal, env.taskQueue) };
}

async function keyVersions(root: KmsProvider): Promise<{ latest: number; min: number }> {
  const key = await root.keyVersions();
  return { latest: key.latestVersion, min: key.minDecryptionVersion };
}

const rootTransit = (keyName: string) =>
  new VaultTransit({ endpoint: inject('vaultAddr'), mount: 'transit', keyName, timeoutMs: 5_000 }, new StaticTokenAuth(inject('vaultToken')));

/** Every pair of the user that holds a ciphertext at Portal, with the digest of the `{id, share}` Portal issued. */
function portalCiphertexts(env: BackupTestEnv, userId: string) {
  return env.simulator.state
    .user(userId)!
    .wallets.flatMap((wallet) => wallet.backupSharePairs)
    .filter((pair) => pair.clientCipherText !== undefined)
    .map((pair) => ({ userId, pairId: pair.id, ciphertext: pair.clientCipherText!, expectedSha256: sha256(sharePlaintext({ id: pair.id, share: pair.share })) }));
}

/** Each ciphertext's version, and whether it decrypts in its user-and-pair context to exactly what Portal issued. */
async function checkAll(transit: KmsProvider, entries: { userId: string; pairId: string; ciphertext: string; expectedSha256: string }[]) {
  const opened = await transit.decryptEach(entries.map((e) => ({ ciphertext: e.ciphertext, context: transitContext(e.userId, e.pairId) })));
  return entries.map((entry, i) => {
    const result = opened[i]!;
    return { version: ciphertextVersion(entry.ciphertext), decrypts: 'plaintext' in result && sha256(result.plaintext) === entry.expectedSha256 };
  });
}

describe.each(KMS_PROVIDERS)('key rotation, Portal-Managed (ciphertexts at Portal; KMS_PROVIDER=%s)', (provider) => {
  let env: BackupTestEnv;
  let keys: KeysClient;
  let keyName: string;
  let root: KmsProvider;

  beforeAll(async () => {
    ({ env, keys, keyName, root } = await rotationTestEnv(provider));
  });
  afterAll(() => env?.close());

  it('a rotation whose worker is SIGKILLed halfway resumes: every ciphertext ends on the new version, decrypting to the same share; the key is rotated once and min_decryption_version raised', async () => {
    const first = env.spawnWorker('rotation-a');
    const userIds = Array.from({ length: 8 }, () => env.seedUser('rot'));
    for (const userId of userIds) await env.backups.startBackupWorkflow(userId);
    for (const userId of userIds) expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    const before = userIds.flatMap((userId) => portalCiphertexts(env, userId));
    expect(before).toHaveLength(16);
    expect(before.every((entry) => ciphertextVersion(entry.ciphertext) === 1)).toBe(true);

    // Slow Portal's reads, so that a rewrap activity (2 users) is in flight for seconds when the worker dies.
    env.simulator.faults.add({ route: 'getCipherText', kind: 'latency', latencyMs: 300 });
    const started = await keys.rotate({ source: { kind: 'list', userIds }, usersPerMinute: 120, concurrency: 1, usersPerActivity: 2, raiseMinDecryptionVersion: true, everyUser: true, backupTaskQueue: env.taskQueue }, operatorSigner('ops-alice'));
    expect(started).toMatchObject({ workflowId: KEY_ROTATION_WORKFLOW_ID, alreadyRunning: false });
    const again = await keys.rotate({ source: { kind: 'list', userIds }, usersPerMinute: 120 }, operatorSigner('ops-alice'));
    expect(again).toMatchObject({ rotationId: started.rotationId, alreadyRunning: true });

    // Kill once one activity has finished and the next one has begun writing.
    const progress = await eventually('the first rewrap activity to finish', async () => {
      const status = await keys.status();
      return (status.progress?.counts.usersVisited ?? 0) >= 2 ? status.progress : undefined;
    }, 90_000);
    const writesSoFar = env.simulator.calls.storeCipherText ?? 0;
    await eventually('the next activity to write', async () => ((env.simulator.calls.storeCipherText ?? 0) > writesSoFar ? true : undefined), 60_000);
    await first.kill();
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(progress.key).toMatchObject({ keyName, fromVersion: 1, targetVersion: 2, rotatedByThisRun: true });
    const mid = userIds.flatMap((userId) => portalCiphertexts(env, userId)).map((entry) => ciphertextVersion(entry.ciphertext));
    expect(mid.filter((version) => version === 2).length).toBeGreaterThan(0);
    expect(mid.filter((version) => version === 1).length).toBeGreaterThan(0);

    const second = env.spawnWorker('rotation-b');
    const report = await keys.wait();
    env.simulator.faults.clear();
    expect(report).toMatchObject({ status: 'COMPLETED', failures: [], deferredCount: 0 });
    expect(report.counts).toMatchObject({ usersVisited: 8, usersFailed: 0, pairsWithoutCiphertext: 0 });
    const { rewrapped, alreadyCurrent, verified, failed } = report.counts.clientCiphertexts;
    // A user rewrapped by the killed attempt after its last heartbeat is found current by the next.
    expect({ total: rewrapped + alreadyCurrent, verified, failed }).toEqual({ total: 16, verified: 16, failed: 0 });
    expect(rewrapped).toBeGreaterThan(0);
    expect(report.minDecryptionVersion).toEqual({ requested: true, raised: true, minDecryptionVersion: 2 });
    expect(await keyVersions(root)).toEqual({ latest: 2, min: 2 });

    const after = userIds.flatMap((userId) => portalCiphertexts(env, userId));
    expect(await checkAll(root, after)).toEqual(after.map(() => ({ version: 2, decrypts: true })));
    // The old ciphertexts no longer decrypt: min_decryption_version is 2.
    expect((await checkAll(root, before)).every((entry) => !entry.decrypts)).toBe(true);

    // The rewrap activity the kill interrupted was retried (the resumed attempt is in history).
    const history = await env.backups.temporal.workflow.getHandle(KEY_ROTATION_WORKFLOW_ID).fetchHistory();
    const attempts = (history.events ?? []).map((event) => event.activityTaskStartedEventAttributes?.attempt ?? 0);
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    await second.stop();
    // The workers' logs of the rotation name users, pairs and counts, never a share or a ciphertext.
    const logs = ['rotation-a', 'rotation-b'].map((name) => readFileSync(join(inject('runDir'), `${env.taskQueue}-${name}.log`), 'utf8')).join('\n');
    expect(logs).toContain('key rotation rewrapped users');
    const shares = userIds.flatMap((userId) => env.simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs.map((p) => p.share)));
    expect(shares.filter((share) => logs.includes(share))).toEqual([]);
    expect(logs).not.toMatch(/vault:v[0-9]+:|awskms:e1:/);
  }, 240_000);

  it('a user whose backup (started before the rotation) is parked is deferred, untouched; once an operator completes it, the rotation rewraps it and raises the minimum', async () => {
    const worker = env.spawnWorker('rotation-c');
    await waitForPollers(env.backups.temporal.connection, env.taskQueue, worker.exited);
    const done = env.seedUser('rot-done');
    const parked = env.seedUser('rot-parked');
    await env.backups.startBackupWorkflow(done);
    await env.backups.waitForBackup(done);
    // Step 4 refused with 401 once: the backup parks with its ciphertexts stored and unmarked.
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId: parked, count: 1 });
    await env.backups.startBackupWorkflow(parked);
    await eventually('the backup to park', async () => ((await env.backups.getBackupStatus(parked)).status === 'NEEDS_ATTENTION' ? true : undefined));
    const parkedBefore = portalCiphertexts(env, parked);
    expect(parkedBefore).toHaveLength(2);

    await keys.rotate({ source: { kind: 'list', userIds: [done, parked] }, usersPerMinute: 600, raiseMinDecryptionVersion: true, everyUser: true, deferredRecheckMs: 1_000, backupTaskQueue: env.taskQueue }, operatorSigner('ops-alice'));
    const waiting = await eventually('the parked user to be deferred', async () => {
      const status = await keys.status();
      return status.progress?.status === 'WAITING_FOR_BACKUPS' ? status.progress : undefined;
    });
    expect(waiting).toMatchObject({ deferredUsers: [parked], key: { fromVersion: 2, targetVersion: 3 } });
    expect(portalCiphertexts(env, parked).map((entry) => entry.ciphertext)).toEqual(parkedBefore.map((entry) => entry.ciphertext));
    expect(portalCiphertexts(env, done).every((entry) => ciphertextVersion(entry.ciphertext) === 3)).toBe(true);

    await env.backups.retryBackup(parked, operatorSigner('ops-mallory'));
    expect((await env.backups.waitForBackup(parked)).status).toBe('COMPLETED');
    const report = await keys.wait();
    expect(report).toMatchObject({ status: 'COMPLETED', deferredCount: 0, minDecryptionVersion: { raised: true, minDecryptionVersion: 3 } });
    expect(report.counts.usersDeferred).toBeGreaterThanOrEqual(1);
    expect(report.counts.clientCiphertexts).toMatchObject({ verified: 4, failed: 0 });
    const all = [...portalCiphertexts(env, done), ...portalCiphertexts(env, parked)];
    expect(await checkAll(root, all)).toEqual(all.map(() => ({ version: 3, decrypts: true })));
    expect(await keyVersions(root)).toEqual({ latest: 3, min: 3 });
    await worker.stop();
  }, 180_000);
});

describe.each(KMS_PROVIDERS)('key rotation with copies (CIPHERTEXT_STORES=portal,postgres; issue 18; KMS_PROVIDER=%s)', (provider) => {
  let env: BackupTestEnv;
  let keys: KeysClient;
  let root: KmsProvider;
  let pool: Pool;

  beforeAll(async () => {
    ({ env, keys, root } = await rotationTestEnv(provider, { workerEnv: { CIPHERTEXT_STORES: 'portal,postgres', DATABASE_URL: inject('databaseUrl') } }));
    pool = createDatabasePool(inject('databaseUrl'));
  });
  afterAll(async () => {
    await env?.close();
    await pool?.end();
  });

  /** Each pair of the user with a ciphertext anywhere: its copy at Portal and in PostgreSQL. */
  async function copiesOf(userId: string) {
    const rows = (await pool.query('SELECT pair_id, ciphertext FROM client_ciphertexts WHERE user_id = $1', [userId])).rows as { pair_id: string; ciphertext: string }[];
    const atPortal = portalCiphertexts(env, userId);
    return atPortal.map((entry) => ({ ...entry, postgres: rows.find((row) => row.pair_id === entry.pairId)?.ciphertext }));
  }

  it('every copy is rewrapped to one new ciphertext; a copy missing is reported by store and blocks the raise; Portal down mid-rotation is waited out and the rotation resumes from its checkpoint; after repair the raise is made', async () => {
    const worker = env.spawnWorker('rotation-copies');
    const userIds = Array.from({ length: 4 }, () => env.seedUser('rot-copies'));
    for (const userId of userIds) await env.backups.startBackupWorkflow(userId);
    for (const userId of userIds) expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    const before = (await Promise.all(userIds.map(copiesOf))).flat();
    expect(before).toHaveLength(8);
    expect(before.every((copy) => copy.postgres === copy.ciphertext && ciphertextVersion(copy.ciphertext) === 1)).toBe(true);
    // One copy lost: the last user's PostgreSQL copy of one pair.
    const lost = before.filter((copy) => copy.userId === userIds[3])[0]!;
    await pool.query('DELETE FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [lost.userId, lost.pairId]);

    // Slow Portal's reads, so that the rewrap is still writing when Portal goes down.
    const slow = env.simulator.faults.add({ route: 'getCipherText', kind: 'latency', latencyMs: 300 });
    const writesBefore = env.simulator.calls.storeCipherText ?? 0;
    await keys.rotate({ source: { kind: 'list', userIds }, usersPerMinute: 600, concurrency: 1, usersPerActivity: 4, raiseMinDecryptionVersion: true, everyUser: true, backupTaskQueue: env.taskQueue }, operatorSigner('ops-alice'));
    // Portal (a store of copies) goes down once the rewrap has written its first copy there.
    await eventually('the rewrap to write a first copy at Portal', async () => ((env.simulator.calls.storeCipherText ?? 0) > writesBefore ? true : undefined), 60_000);
    const outage = env.simulator.faults.add({ route: 'storeCipherText', kind: 'status', status: 503 });
    // The rotation waits: its rewrap activity is retried (not failed), and its checkpoint is kept in the heartbeats.
    const pending = await eventually('the rewrap to be retried while Portal is down', async () => {
      const { raw } = await env.backups.temporal.workflow.getHandle(KEY_ROTATION_WORKFLOW_ID).describe();
      const activity = raw.pendingActivities?.find((a) => a.activityType?.name === 'rewrapUsers');
      return activity && (activity.attempt ?? 0) >= 2 && activity.heartbeatDetails?.payloads?.length ? activity : undefined;
    }, 90_000);
    expect(pending.attempt).toBeGreaterThanOrEqual(2);
    // `keys status` shows it being retried, with Portal's refusal, while the rotation goes on rewrapping.
    const waiting = await keys.status();
    expect(waiting.progress?.status).toBe('REWRAPPING');
    expect(waiting.retrying).toEqual([expect.objectContaining({ type: 'rewrapUsers', lastFailure: expect.stringMatching(/503|Portal/) })]);
    env.simulator.faults.remove(outage.id);
    env.simulator.faults.remove(slow.id);

    const report = await keys.wait();
    expect(report).toMatchObject({ status: 'COMPLETED_WITH_FAILURES', deferredCount: 0 });
    // Each copy counted once: 8 pairs × 2 copies, one of them missing. A checkpoint lost in the outage would have counted copies twice.
    expect(report.counts).toMatchObject({ usersVisited: 4, usersFailed: 0, pairsWithoutCiphertext: 0, copiesMissing: 1 });
    const { rewrapped, alreadyCurrent, verified, failed } = report.counts.clientCiphertexts;
    expect({ total: rewrapped + alreadyCurrent, verified, failed }).toEqual({ total: 15, verified: 15, failed: 1 });
    expect(report.failures).toEqual([{ userId: lost.userId, pairId: lost.pairId, kind: 'client-ciphertext', store: 'postgres', reason: expect.stringContaining('backup copies repair') }]);
    expect(report.minDecryptionVersion).toMatchObject({ requested: true, raised: false, minDecryptionVersion: 1, reason: expect.stringContaining('1 failure(s)') });
    expect(await keyVersions(root)).toEqual({ latest: 2, min: 1 });
    // Every copy there is on version 2, one string per pair, decrypting to what Portal issued; the lost one was not recreated.
    const after = (await Promise.all(userIds.map(copiesOf))).flat();
    expect(await checkAll(root, after)).toEqual(after.map(() => ({ version: 2, decrypts: true })));
    for (const copy of after) expect(copy.postgres).toBe(copy.pairId === lost.pairId ? undefined : copy.ciphertext);

    // The repair recreates the copy from the rewrapped one; a rotation without a new version then finds every copy current and raises.
    const repair = await openCopyRepair(loadCopyRepairConfig(env.workerEnv));
    try {
      const summary = await repairCopies(repair.deps, (async function* () { yield [lost.userId]; })(), { usersPerMinute: 6_000 }, () => undefined);
      expect(summary).toMatchObject({ users: 1, repaired: 1, failed: 0 });
    } finally {
      await repair.close();
    }
    await keys.rotate({ source: { kind: 'list', userIds }, usersPerMinute: 600, rotate: false, raiseMinDecryptionVersion: true, everyUser: true, backupTaskQueue: env.taskQueue }, operatorSigner('ops-alice'));
    const second = await keys.wait();
    expect(second.counts.clientCiphertexts).toEqual({ rewrapped: 0, alreadyCurrent: 16, verified: 16, failed: 0 });
    expect(second.failures).toEqual([]);
    const repaired = (await Promise.all(userIds.map(copiesOf))).flat();
    expect(repaired.every((copy) => copy.postgres === copy.ciphertext)).toBe(true);
    // The census of every copy passed. Then the check counts client_ciphertexts, which other test files share: their rows of other keys may still hold it back.
    if (!second.minDecryptionVersion.raised) {
      expect(second.minDecryptionVersion.reason).toMatch(/^client_ciphertexts holds [0-9]+ ciphertext\(s\) below version 2/);
      for (const userId of userIds) expect(second.minDecryptionVersion.reason).not.toContain(userId);
    } else {
      expect(await keyVersions(root)).toEqual({ latest: 2, min: 2 });
      expect((await checkAll(root, before)).every((entry) => !entry.decrypts)).toBe(true);
    }
    await worker.stop();
  }, 300_000);
});

describe.each(KMS_PROVIDERS)('key rotation: a rewrap result completed by id (issue 15, item 1; KMS_PROVIDER=%s)', (provider) => {
  let env: BackupTestEnv;
  let keys: KeysClient;
  let root: KmsProvider;

  beforeAll(async () => {
    // Portal calls may hang for the whole test: the held rewrap must still be running when it is forged.
    ({ env, keys, root } = await rotationTestEnv(provider, { portalTimeoutMs: 60_000 }));
  });
  afterAll(() => env?.close());

  it('never raises min_decryption_version: the census reads the ciphertexts the forged result claimed, finds them on the old version, and the raise is not made', async () => {
    const worker = env.spawnWorker('rotation-forged');
    const userId = env.seedUser('rot-forged');
    await env.backups.startBackupWorkflow(userId);
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    // The rewrap is held at its first Portal call for this user (nothing read or written yet).
    const hold = env.simulator.faults.add({ route: 'getClient', kind: 'hang', latencyMs: 60_000, userId });
    await keys.rotate({ source: { kind: 'list', userIds: [userId] }, usersPerMinute: 600, raiseMinDecryptionVersion: true, everyUser: true, backupTaskQueue: env.taskQueue }, operatorSigner('ops-alice'));
    const activityId = await eventually('the rewrap to run', async () => {
      const { raw } = await env.backups.temporal.workflow.getHandle(KEY_ROTATION_WORKFLOW_ID).describe();
      return raw.pendingActivities?.find((a) => a.activityType?.name === 'rewrapUsers' && a.lastStartedTime)?.activityId ?? undefined;
    });
    // Someone holding the client codec key completes it with "every ciphertext verified".
    const allVerified = { ...emptyRotationCounts(), usersVisited: 1, clientCiphertexts: { rewrapped: 2, alreadyCurrent: 0, verified: 2, failed: 0 } };
    await env.backups.temporal.activity.complete({ workflowId: KEY_ROTATION_WORKFLOW_ID, activityId }, { counts: allVerified, failures: [], deferred: [] });
    env.simulator.faults.remove(hold.id);

    const report = await keys.wait();
    expect(report.counts.clientCiphertexts).toMatchObject({ verified: 2, failed: 0 });
    expect(report.minDecryptionVersion).toMatchObject({ requested: true, raised: false, minDecryptionVersion: 1 });
    expect(report.minDecryptionVersion.reason).toMatch(/the census found 2 ciphertext\(s\) below version 2/);
    expect(await keyVersions(root)).toEqual({ latest: 2, min: 1 });
    // The backup still restores: its ciphertexts are on version 1, which still decrypts.
    const stored = portalCiphertexts(env, userId);
    expect(await checkAll(root, stored)).toEqual(stored.map(() => ({ version: 1, decrypts: true })));
    await worker.stop();
  }, 180_000);
});

describe.each(KMS_PROVIDERS)('key rotation, Self-Managed (client ciphertexts in PostgreSQL, custodian shares held by the webhook; KMS_PROVIDER=%s)', (provider) => {
  const SECRET = `whsec-${randomBytes(12).toString('hex')}`;
  let env: BackupTestEnv;
  let keys: KeysClient;
  let root: KmsProvider;
  let pool: Pool;
  let webhook: FastifyInstance;
  let webhookUrl: string;

  beforeAll(async () => {
    const key = await rotationKeyOf(provider);
    root = key.root;
    pool = createDatabasePool(inject('databaseUrl'));
    webhook = createWebhookServer({
      records: new CustodianShareRepository(pool),
      transit: key.root,
      secrets: [SECRET],
      deadlineMs: 8_000,
      bodyLimitBytes: 64 * 1024,
      logger: pino({ level: 'silent' }),
    });
    webhookUrl = await webhook.listen({ host: '127.0.0.1', port: 0 });
    env = await createBackupTestEnv({
      kms: provider,
      ...(key.kmsKeySuffix ? { kmsKeySuffix: key.kmsKeySuffix } : {}),
      simulator: { selfManaged: { webhookUrl, webhookSecret: SECRET }, retainCustodianShares: true },
      workerEnv: { BACKUP_MODE: 'self-managed', CIPHERTEXT_STORE: 'postgres', DATABASE_URL: inject('databaseUrl'), ...key.workerEnv },
    });
    await env.startWorker();
    keys = new KeysClient(env.backups.temporal, env.taskQueue);
  });
  afterAll(async () => {
    await env?.close();
    await webhook?.close();
    await pool?.end();
  });

  it('rewraps the client ciphertexts and the custodian shares of every user of the paged source; min_decryption_version stays where it was when not asked', async () => {
    const userIds = Array.from({ length: 3 }, () => env.seedUser('rot-self'));
    for (const userId of userIds) await env.backups.startBackupWorkflow(userId);
    for (const userId of userIds) await env.backups.waitForBackup(userId);
    const clientIds = userIds.map((userId) => env.simulator.state.user(userId)!.clientId);
    const clientRows = async () =>
      (await pool.query('SELECT user_id, pair_id, ciphertext FROM client_ciphertexts WHERE user_id = ANY($1)', [userIds])).rows as { user_id: string; pair_id: string; ciphertext: string }[];
    const custodianRows = async () =>
      (await pool.query('SELECT client_id, pair_id, encrypted_share, share_sha256 FROM custodian_shares WHERE client_id = ANY($1)', [clientIds])).rows as {
        client_id: string;
        pair_id: string;
        encrypted_share: string;
        share_sha256: string;
      }[];
    const clientBefore = await clientRows();
    const custodianBefore = await custodianRows();
    expect(clientBefore).toHaveLength(6);
    expect(custodianBefore).toHaveLength(6);

    // The backend's paged user route (the batch's http source; its origin is the workers' credentials origin).
    await keys.rotate({ source: { kind: 'http', url: `${env.simulator.url}/backend/users` }, usersPerMinute: 600, pageSize: 2 }, operatorSigner('ops-alice'));
    const report = await keys.wait();
    expect(report).toMatchObject({ status: 'COMPLETED', total: 3, failures: [] });
    expect(report.counts.clientCiphertexts).toEqual({ rewrapped: 6, alreadyCurrent: 0, verified: 6, failed: 0 });
    expect(report.counts.custodianShares).toEqual({ rewrapped: 6, alreadyCurrent: 0, verified: 6, failed: 0 });
    expect(report.minDecryptionVersion).toEqual({ requested: false, raised: false, minDecryptionVersion: 1 });
    expect(await keyVersions(root)).toEqual({ latest: 2, min: 1 });

    const transit = root;
    const pairsOf = (userId: string) => env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
    const clientAfter = await clientRows();
    const expected = clientAfter.map((row) => {
      const pair = pairsOf(row.user_id).find((p) => p.id === row.pair_id)!;
      return { userId: row.user_id, pairId: row.pair_id, ciphertext: row.ciphertext, expectedSha256: sha256(sharePlaintext({ id: pair.id, share: pair.share })) };
    });
    expect(await checkAll(transit, expected)).toEqual(expected.map(() => ({ version: 2, decrypts: true })));
    const custodianAfter = await custodianRows();
    const opened = await transit.decryptEach(custodianAfter.map((row) => ({ ciphertext: row.encrypted_share, context: custodianShareContext(row.client_id, row.pair_id) })));
    custodianAfter.forEach((row, i) => {
      expect(ciphertextVersion(row.encrypted_share)).toBe(2);
      expect(sha256((opened[i] as { plaintext: Buffer }).plaintext)).toBe(row.share_sha256);
    });
    // Not raised: the old ciphertexts still decrypt.
    const old = await transit.decryptEach(custodianBefore.map((row) => ({ ciphertext: row.encrypted_share, context: custodianShareContext(row.client_id, row.pair_id) })));
    expect(old.every((result) => 'plaintext' in result)).toBe(true);
    // The webhook still serves every share exactly as received (what Portal fetches at recovery).
    const fetched = await fetch(`${webhookUrl}/backup/fetch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
      body: JSON.stringify({ clientId: clientIds[0] }),
    });
    const body = (await fetched.json()) as { backupShares: string[] };
    expect(body.backupShares.map((share) => sha256(share)).sort()).toEqual(custodianAfter.filter((r) => r.client_id === clientIds[0]).map((r) => r.share_sha256).sort());
  }, 180_000);
});
