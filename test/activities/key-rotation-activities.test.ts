import { createHash, randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import nodeVault from 'node-vault';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sharePlaintext } from '../../activities';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { HttpCiphertextStore } from '../../adapters/stores/http-ciphertext-store';
import { createKeyRotationActivities, type KeyRotationDeps } from '../../activities/rotation/key-rotation-activities';
import { createRotationCensus } from '../../activities/rotation/rotation-census';
import { StepReceipts } from '../../activities/step-receipts';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { requireStoredBackup } from '../../adapters/stores/stored-backup';
import { PortalClient } from '../../adapters/portal/portal-client';
import { PostgresCiphertextStore } from '../../adapters/stores/postgres-ciphertext-store';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { ciphertextVersion, VaultTransit } from '../../adapters/vault/vault-transit';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { createDatabasePool } from '../../db/pool';
import { CURVES } from '../../domain/curves';
import { CiphertextBeingRewrappedError, CiphertextStoreUnavailableError, PortalUnavailableError, VaultPermissionError } from '../../domain/errors';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';
import { keyRotationPolicy, workerPolicy } from '../../stack/vault-policies';
import type { RewrapCheckpoint } from '../../activities/rotation/rewrap-checkpoint';
import { emptyRotationCounts, type RewrapUsersInput, type RewrapUsersResult } from '../../contracts/rotate-keys-api';
import { OUTAGE_AFTER_NO_PROGRESS_MS, OUTAGE_RETRY_INTERVAL_MS } from '../../contracts/step-timeouts';
import { startCompanyCiphertextEndpoint, type CompanyCiphertextEndpoint } from '../support/company-ciphertext-endpoint';
import { failureOf } from '../support/failure-of';

type VaultAdmin = ReturnType<typeof nodeVault>;

let simulator: PortalSimulator;
let portal: PortalClient;
let admin: VaultAdmin;
let pool: Pool;
let connection: Connection;
let temporal: Client;
let endpoint: CompanyCiphertextEndpoint;
const startedWorkflows: string[] = [];

beforeAll(async () => {
  simulator = await startPortalSimulator({ seed: 19 });
  portal = new PortalClient({ enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 3_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1 << 20 });
  admin = nodeVault({ endpoint: inject('vaultAddr'), token: inject('vaultToken'), debug: () => undefined } as nodeVault.VaultOptions);
  pool = createDatabasePool(inject('databaseUrl'));
  connection = await Connection.connect({ address: inject('temporalAddress') });
  temporal = new Client({ connection });
  endpoint = await startCompanyCiphertextEndpoint();
});
afterAll(async () => {
  for (const workflowId of startedWorkflows) await temporal.workflow.getHandle(workflowId).terminate('test over').catch(() => undefined);
  await connection?.close();
  await pool?.end();
  await endpoint?.close();
  await simulator?.close();
});

const credentials = () => new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 3_000 });
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const hex = () => randomBytes(3).toString('hex');

/** A fresh derived Transit key, a token of the given policy for it, and the service's adapter over that token. */
async function freshKey(policy: 'rotation' | 'worker' = 'rotation') {
  const keyName = `rotation-act-${hex()}`;
  await admin.write(`transit/keys/${keyName}`, { type: 'aes256-gcm96', derived: true });
  const transit = await transitWith(keyName, policy);
  return { keyName, transit };
}

async function transitWith(keyName: string, policy: 'rotation' | 'worker') {
  const policyName = `${policy}-${keyName}`;
  await admin.addPolicy({ name: policyName, rules: policy === 'rotation' ? keyRotationPolicy(keyName) : workerPolicy(keyName) });
  const token = ((await admin.tokenCreate({ policies: [policyName], ttl: '1h' })) as { auth: { client_token: string } }).auth.client_token;
  // node-vault adopts the token of any response that carries one: keep the admin on root.
  admin.token = inject('vaultToken');
  return new VaultTransit({ endpoint: inject('vaultAddr'), mount: 'transit', keyName, timeoutMs: 2_000 }, new StaticTokenAuth(token));
}

/** A user backed up for real (Portal's four steps, done here with the adapters): pairs at Portal, ciphertexts in `store`. */
async function backUp(transit: VaultTransit, store: CiphertextStore, options: { userId?: string; mark?: boolean } = {}) {
  const userId = options.userId ?? `rot-${hex()}`;
  if (!simulator.state.user(userId)) simulator.state.seedUser(userId);
  const { clientApiKey, generateResponse } = await credentials().load(userId);
  const shares = await portal.backup(clientApiKey, generateResponse);
  const plaintexts = CURVES.map((curve) => sharePlaintext(shares[curve]));
  const ciphertexts = await transit.encryptBatch(CURVES.map((curve, i) => ({ plaintext: plaintexts[i]!, context: transitContext(userId, shares[curve].id) })));
  await store.put({ userId }, CURVES.map((curve, i) => ({ curve, pairId: shares[curve].id, ciphertext: ciphertexts[i]! })), { freshPairs: true });
  if (options.mark !== false) await portal.markBackupPairsStored(clientApiKey, CURVES.map((curve) => shares[curve].id));
  return { userId, shares, pairs: CURVES.map((curve, i) => ({ curve, pairId: shares[curve].id, plaintextSha256: sha256(plaintexts[i]!), ciphertext: ciphertexts[i]! })) };
}

/** The run MockActivityEnvironment's activities belong to (its default info). */
const MOCK_RUN = { workflowId: 'test', runId: '00000000-0000-0000-0000-000000000000' };
/** The workers' receipts (from their sealing ring): the census's, the check's and the raise's. */
const receipts = new StepReceipts({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) });

function rotationDeps(transit: VaultTransit, store: CiphertextStore, overrides: Partial<KeyRotationDeps> = {}): KeyRotationDeps {
  return { credentials: credentials(), portal, transit, store, temporal, database: pool, receipts, heartbeatIntervalMs: 50, ...overrides };
}

function censusOf(store: CiphertextStore, copies?: CiphertextStore[]) {
  return createRotationCensus({ credentials: credentials(), portal, store, ...(copies ? { copies } : {}), receipts, heartbeatIntervalMs: 50 });
}

function run<A extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return env.run(fn, ...args) as Promise<R>;
}

function rewrapInput(userIds: string[], targetVersion: number, rotatedAtMs = Date.now()): RewrapUsersInput {
  return { rotationId: `test-${hex()}`, userIds, targetVersion, rotatedAtMs };
}

/** What is stored for the user's pair now: its version, and whether it decrypts in its context to the expected digest. */
async function storedState(transit: VaultTransit, store: CiphertextStore, userId: string, pair: { curve: (typeof CURVES)[number]; pairId: string; plaintextSha256: string }) {
  const stored = await store.get({ userId }, pair.pairId, pair.curve);
  const [opened] = await transit.decryptEach([{ ciphertext: stored, context: transitContext(userId, pair.pairId) }]);
  return { version: ciphertextVersion(stored), stored, decrypts: opened !== undefined && 'plaintext' in opened && sha256(opened.plaintext) === pair.plaintextSha256 };
}

describe('Vault Transit: rotate, rewrap, min_decryption_version (real Vault)', () => {
  it('rewraps to the new version in the same context only, and old versions stop decrypting once the minimum is raised', async () => {
    const { transit } = await freshKey();
    const context = transitContext('u-1', 'pair-1');
    const [v1] = await transit.encryptBatch([{ plaintext: Buffer.from('{"id":"pair-1","share":"c2hhcmU="}'), context }]);
    expect(ciphertextVersion(v1!)).toBe(1);
    expect(await transit.keyVersions()).toMatchObject({ latestVersion: 1, minDecryptionVersion: 1 });
    expect((await transit.rotateKey()).latestVersion).toBe(2);
    const [rewrapped, wrongContext] = await transit.rewrapEach(
      [
        { ciphertext: v1!, context },
        { ciphertext: v1!, context: transitContext('u-1', 'pair-2') },
      ],
      2,
    );
    expect(rewrapped).toHaveProperty('ciphertext');
    const v2 = (rewrapped as { ciphertext: string }).ciphertext;
    expect(ciphertextVersion(v2)).toBe(2);
    expect(wrongContext).toHaveProperty('error');
    const [opened] = await transit.decryptEach([{ ciphertext: v2, context }]);
    expect((opened as { plaintext: Buffer }).plaintext.toString()).toBe('{"id":"pair-1","share":"c2hhcmU="}');
    expect(await transit.setMinDecryptionVersion(2)).toMatchObject({ latestVersion: 2, minDecryptionVersion: 2 });
    const [old] = await transit.decryptEach([{ ciphertext: v1!, context }]);
    expect(old).toHaveProperty('error');
  });

  it("the workers' policy cannot rotate (VaultPermissionError, retried as systemic); the rotation policy can", async () => {
    const { keyName, transit } = await freshKey();
    const workerTransit = await transitWith(keyName, 'worker');
    await expect(workerTransit.rotateKey()).rejects.toBeInstanceOf(VaultPermissionError);
    await expect(workerTransit.rewrapEach([{ ciphertext: 'vault:v1:AAAA', context: transitContext('u', 'p') }])).rejects.toBeInstanceOf(VaultPermissionError);
    const store = new PortalCiphertextStore(portal, credentials());
    const refused = createKeyRotationActivities(rotationDeps(workerTransit, store));
    const failure = await failureOf(run(new MockActivityEnvironment(), refused.rotateTransitKey, { rotationId: 'r', expectedLatestVersion: 1 }));
    // Not counted against users: the rotation waits (retries) until the policy is fixed.
    expect(failure).toMatchObject({ type: 'VaultPermissionError', nonRetryable: false });
    expect((await transit.rotateKey()).latestVersion).toBe(2);
  });
});

describe('key rotation activities (MockActivityEnvironment, real Vault, simulator, PostgreSQL, Temporal)', () => {
  it('rotateTransitKey adds one version, however often it is retried', async () => {
    const { transit } = await freshKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, new PortalCiphertextStore(portal, credentials())));
    const key = await run(new MockActivityEnvironment(), activities.readTransitKey);
    expect(key).toMatchObject({ latestVersion: 1, minDecryptionVersion: 1, storeKind: 'portal', custodianShares: false });
    const first = await run(new MockActivityEnvironment(), activities.rotateTransitKey, { rotationId: 'r', expectedLatestVersion: 1 });
    // The retry of an attempt whose response was lost: same input, the key is past it already.
    const retry = await run(new MockActivityEnvironment({ attempt: 2 }), activities.rotateTransitKey, { rotationId: 'r', expectedLatestVersion: 1 });
    expect(first).toEqual({ latestVersion: 2, rotated: true });
    expect(retry).toEqual({ latestVersion: 2, rotated: false });
    expect((await transit.keyVersions()).latestVersion).toBe(2);
  });

  it('Portal store: every ciphertext (completed and stored-but-unmarked pairs) is rewrapped, read back and decrypts to the same bytes; a second pass finds them current', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const marked = await backUp(transit, store);
    const unmarked = await backUp(transit, store, { mark: false });
    // A second backup of the first user, plus an orphan (pairs made, nothing stored) of the second.
    const again = await backUp(transit, store, { userId: marked.userId });
    const { clientApiKey, generateResponse } = await credentials().load(unmarked.userId);
    await portal.backup(clientApiKey, generateResponse);
    const noBackup = `rot-none-${hex()}`;
    simulator.state.seedUser(noBackup);
    await transit.rotateKey();

    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const env = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => heartbeats.push(details));
    const result = await run(env, activities.rewrapUsers, rewrapInput([marked.userId, unmarked.userId, noBackup], 2));
    expect(result.counts).toMatchObject({
      usersVisited: 3,
      usersFailed: 0,
      usersDeferred: 0,
      pairsWithoutCiphertext: 2,
      clientCiphertexts: { rewrapped: 6, alreadyCurrent: 0, verified: 6, failed: 0 },
    });
    expect(result.failures).toEqual([]);
    for (const { userId, pairs } of [marked, unmarked, { userId: marked.userId, pairs: again.pairs }]) {
      for (const pair of pairs) expect(await storedState(transit, store, userId, pair)).toMatchObject({ version: 2, decrypts: true });
    }
    // The last heartbeat carries the finished checkpoint: ids, counts and reasons only, no ciphertext.
    expect(heartbeats.at(-1)).toMatchObject({ next: 3 });
    expect(JSON.stringify(heartbeats)).not.toContain('vault:v');

    const second = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([marked.userId, unmarked.userId], 2));
    expect(second.counts.clientCiphertexts).toEqual({ rewrapped: 0, alreadyCurrent: 6, verified: 6, failed: 0 });
  });

  it('a retried attempt resumes at the user its last heartbeat reached, keeping the counts so far', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const input = rewrapInput(users.map((u) => u.userId), 2);
    const sofar: RewrapUsersResult = { counts: emptyRotationCounts(), failures: [], deferred: [] };
    sofar.counts.usersVisited = 1;
    sofar.counts.clientCiphertexts = { rewrapped: 2, alreadyCurrent: 0, verified: 2, failed: 0 };
    const env = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { rotationId: input.rotationId, userIds: input.userIds, next: 1, result: sofar } });
    const result = await run(env, activities.rewrapUsers, input);
    expect(result.counts).toMatchObject({ usersVisited: 3, clientCiphertexts: { rewrapped: 6, verified: 6 } });
    // The first user was not visited again: still on version 1.
    expect((await storedState(transit, store, users[0]!.userId, users[0]!.pairs[0]!)).version).toBe(1);
    expect((await storedState(transit, store, users[1]!.userId, users[1]!.pairs[0]!)).version).toBe(2);
    // A checkpoint of another rotation (or other users) is ignored: everyone is visited.
    const fresh = await run(new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { rotationId: 'other', userIds: input.userIds, next: 3, result: sofar } }), activities.rewrapUsers, input);
    expect(fresh.counts).toMatchObject({ usersVisited: 3, clientCiphertexts: { rewrapped: 2, alreadyCurrent: 4 } });
  });

  it('an attempt that fails after k of n ciphertexts resumes at k: the retry reads and rewrites nothing before k, and each is counted once', async () => {
    const { transit } = await freshKey();
    const portalStore = new PortalCiphertextStore(portal, credentials());
    const user = await backUp(transit, portalStore);
    const backups = [user, await backUp(transit, portalStore, { userId: user.userId }), await backUp(transit, portalStore, { userId: user.userId })];
    await transit.rotateKey();
    const n = 6;
    const k = 4;
    // The store as the rotation sees it: every call recorded, and the (k+1)th replace of attempt 1 fails as Portal would (503).
    const calls: { attempt: number; op: 'get' | 'replace'; pairId: string }[] = [];
    let attempt = 1;
    const store: CiphertextStore = {
      kind: 'portal',
      put: (context, ciphertexts, options) => portalStore.put(context, ciphertexts, options),
      get: (context, pairId, curve) => {
        calls.push({ attempt, op: 'get', pairId });
        return portalStore.get(context, pairId, curve);
      },
      replace: (context, next, expectedOld) => {
        calls.push({ attempt, op: 'replace', pairId: next.pairId });
        if (attempt === 1 && calls.filter((c) => c.op === 'replace').length === k + 1) return Promise.reject(new PortalUnavailableError('Portal answered 503 (injected)'));
        return portalStore.replace(context, next, expectedOld);
      },
    };
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const input = rewrapInput([user.userId], 2);
    const first = new MockActivityEnvironment({ attempt: 1 });
    const heartbeats: RewrapCheckpoint[] = [];
    first.on('heartbeat', (details: RewrapCheckpoint) => heartbeats.push(structuredClone(details)));
    const failure = await failureOf(run(first, activities.rewrapUsers, input));
    expect(failure).toMatchObject({ type: 'PortalUnavailableError', nonRetryable: false });
    const saved = heartbeats.at(-1)!;
    expect(saved).toMatchObject({ next: 0, user: { userId: user.userId }, result: { counts: { clientCiphertexts: { rewrapped: k, verified: k } } } });
    expect(saved.user!.done).toHaveLength(k);
    // Ids and counters only: no ciphertext, no digest, no API key.
    const { clientApiKey } = await credentials().load(user.userId);
    expect(JSON.stringify(heartbeats)).not.toMatch(/vault:v|[0-9a-f]{64}/);
    expect(JSON.stringify(heartbeats)).not.toContain(clientApiKey);

    attempt = 2;
    const result = await run(new MockActivityEnvironment({ attempt: 2, heartbeatDetails: saved }), activities.rewrapUsers, input);
    const replacedFirst = calls.filter((c) => c.attempt === 1 && c.op === 'replace').map((c) => c.pairId);
    const touchedAgain = calls.filter((c) => c.attempt === 2).map((c) => c.pairId);
    expect(replacedFirst).toHaveLength(k + 1);
    for (const pairId of replacedFirst.slice(0, k)) expect(touchedAgain).not.toContain(pairId);
    expect(calls.filter((c) => c.attempt === 2 && c.op === 'replace').map((c) => c.pairId)).toContain(replacedFirst[k]);
    expect(result.counts).toMatchObject({ usersVisited: 1, usersFailed: 0, clientCiphertexts: { rewrapped: n, alreadyCurrent: 0, verified: n, failed: 0 } });
    expect(result.failures).toEqual([]);
    for (const pair of backups.flatMap((backup) => backup.pairs)) expect(await storedState(transit, portalStore, user.userId, pair)).toMatchObject({ version: 2, decrypts: true });
  });

  it('the next attempt is paced by progress, not by the count of failed attempts: soon after a checkpoint moved, once a minute when none moved for long', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    // Portal fails for the second user only: the first one is rewrapped and checkpointed first.
    simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, userId: users[1]!.userId });
    try {
      // Attempt 25, scheduled long ago: the checkpoint just moved, so Portal is flaky, not down.
      const longAgo = Date.now() - 2 * OUTAGE_AFTER_NO_PROGRESS_MS;
      const env = new MockActivityEnvironment({ attempt: 25, scheduledTimestampMs: longAgo });
      const heartbeats: { next?: number }[] = [];
      env.on('heartbeat', (details: { next?: number }) => heartbeats.push(structuredClone(details)));
      const afterProgress = await failureOf(run(env, activities.rewrapUsers, rewrapInput(users.map((u) => u.userId), 2)));
      expect(afterProgress).toMatchObject({ type: 'PortalUnavailableError', nonRetryable: false });
      expect(afterProgress.nextRetryDelay).toBeLessThan(OUTAGE_RETRY_INTERVAL_MS);
      expect(heartbeats.at(-1)?.next).toBe(1);
      // Nothing moved since the activity was scheduled long ago: the outage pace, at attempt 2 as well.
      const noProgress = await failureOf(run(new MockActivityEnvironment({ attempt: 2, scheduledTimestampMs: longAgo }), activities.rewrapUsers, rewrapInput([users[1]!.userId], 2)));
      expect(noProgress.nextRetryDelay).toBe(OUTAGE_RETRY_INTERVAL_MS);
    } finally {
      simulator.faults.clear();
    }
  });

  it('a user whose backup started before the rotation and still runs is deferred and left untouched; one started after defers nobody', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const user = await backUp(transit, store);
    await transit.rotateKey();
    // A backup run of the user on a queue no worker polls: it stays RUNNING.
    const workflowId = `backup-${user.userId}`;
    const started = await temporal.workflow.start('backupWallet', { taskQueue: `nobody-${hex()}`, workflowId, args: [{ userId: user.userId }] });
    startedWorkflows.push(workflowId);
    const startedAt = (await started.describe()).startTime.getTime();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const deferred = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2, startedAt + 1_000));
    expect(deferred).toMatchObject({ deferred: [user.userId], counts: { usersDeferred: 1, usersVisited: 0 } });
    expect((await storedState(transit, store, user.userId, user.pairs[0]!)).version).toBe(1);
    const after = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2, startedAt - 1_000));
    expect(after).toMatchObject({ deferred: [], counts: { usersVisited: 1, clientCiphertexts: { rewrapped: 2, verified: 2 } } });
  });

  it('PostgreSQL store: replace is compare-and-set; a ciphertext changed by another writer is not overwritten and is reported', async () => {
    const { transit } = await freshKey();
    const repository = new ClientCiphertextRepository(pool);
    const postgres = new PostgresCiphertextStore(repository);
    const user = await backUp(transit, postgres);
    const raced = await backUp(transit, postgres);
    await transit.rotateKey();
    const [other] = await transit.encryptBatch([{ plaintext: Buffer.from('another writer'), context: transitContext(raced.userId, raced.pairs[0]!.pairId) }]);
    // Another writer puts a ciphertext of other bytes (already of version 2) in place between the
    // rotation's read and its replace: the version alone would pass, the digest does not.
    const racing: CiphertextStore = {
      kind: 'postgres',
      get: (context, pairId, curve) => postgres.get(context, pairId, curve),
      put: (context, ciphertexts, options) => postgres.put(context, ciphertexts, options),
      replace: async (context, next, expectedOld) => {
        if (next.pairId === raced.pairs[0]!.pairId) {
          await pool.query('UPDATE client_ciphertexts SET ciphertext = $3 WHERE user_id = $1 AND pair_id = $2', [context.userId, next.pairId, other]);
        }
        return postgres.replace(context, next, expectedOld);
      },
    };
    const activities = createKeyRotationActivities(rotationDeps(transit, racing));
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId, raced.userId], 2));
    expect(result.counts.clientCiphertexts).toEqual({ rewrapped: 3, alreadyCurrent: 0, verified: 3, failed: 1 });
    expect(result.failures).toEqual([
      expect.objectContaining({ userId: raced.userId, pairId: raced.pairs[0]!.pairId, kind: 'client-ciphertext', reason: expect.stringContaining('does not decrypt to the same bytes') }),
    ]);
    expect(await repository.get(raced.userId, raced.pairs[0]!.pairId)).toBe(other);
    for (const pair of user.pairs) expect(await storedState(transit, postgres, user.userId, pair)).toMatchObject({ version: 2, decrypts: true });
    // The compare-and-set itself: a stale expected value writes nothing.
    expect(await postgres.replace({ userId: user.userId }, { ...user.pairs[0]!, ciphertext: other! }, user.pairs[0]!.ciphertext)).toBe('changed');
  });

  it('custodian shares held for the client are rewrapped in their own context and checked against the SHA-256 recorded at delivery', async () => {
    const { transit } = await freshKey();
    const repository = new ClientCiphertextRepository(pool);
    const store = new PostgresCiphertextStore(repository);
    const custodian = new CustodianShareRepository(pool);
    const user = await backUp(transit, store);
    const clientId = simulator.state.user(user.userId)!.clientId;
    const shares = user.pairs.map((pair) => ({ pair, share: JSON.stringify({ custodian: pair.pairId, secret: hex() }) }));
    const encrypted = await transit.encryptBatch(shares.map(({ pair, share }) => ({ plaintext: Buffer.from(share), context: custodianShareContext(clientId, pair.pairId) })));
    for (const [i, { pair, share }] of shares.entries()) {
      await custodian.putOnce({ clientId, backupMethod: 'UNKNOWN', pairId: pair.pairId, encryptedShare: encrypted[i]!, shareSha256: createHash('sha256').update(share).digest('hex') });
    }
    // A row whose recorded digest is not the one of what it decrypts to: reported, left alone.
    const [odd] = await transit.encryptBatch([{ plaintext: Buffer.from('odd'), context: custodianShareContext(clientId, 'pair-odd') }]);
    await custodian.putOnce({ clientId, backupMethod: 'UNKNOWN', pairId: 'pair-odd', encryptedShare: odd!, shareSha256: 'f'.repeat(64) });
    await transit.rotateKey();

    const activities = createKeyRotationActivities(rotationDeps(transit, store, { custodianShares: custodian }));
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(result.counts.clientCiphertexts).toEqual({ rewrapped: 2, alreadyCurrent: 0, verified: 2, failed: 0 });
    expect(result.counts.custodianShares).toEqual({ rewrapped: 2, alreadyCurrent: 0, verified: 2, failed: 1 });
    expect(result.failures).toEqual([expect.objectContaining({ kind: 'custodian-share', pairId: 'pair-odd', reason: expect.stringContaining('SHA-256') })]);
    const rows = await custodian.listByClient(clientId);
    for (const { pair, share } of shares) {
      const row = rows.find((r) => r.pairId === pair.pairId)!;
      expect(ciphertextVersion(row.encryptedShare)).toBe(2);
      const [opened] = await transit.decryptEach([{ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, pair.pairId) }]);
      expect((opened as { plaintext: Buffer }).plaintext.toString()).toBe(share);
    }
    expect(ciphertextVersion(rows.find((r) => r.pairId === 'pair-odd')!.encryptedShare)).toBe(1);
  });

  it('a ciphertext that does not decrypt in its pair’s context is reported and left as it is', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const user = await backUp(transit, store, { mark: false });
    const { clientApiKey } = await credentials().load(user.userId);
    // The SECP256K1 pair's ciphertext stored under the ED25519 pair as well: it belongs to another pair.
    await portal.storeCipherText(clientApiKey, user.pairs[1]!.pairId, user.pairs[0]!.ciphertext);
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(result.counts.clientCiphertexts).toEqual({ rewrapped: 1, alreadyCurrent: 0, verified: 1, failed: 1 });
    expect(result.failures[0]).toMatchObject({ pairId: user.pairs[1]!.pairId, reason: expect.stringContaining('does not decrypt in its context') });
    expect(await store.get({ userId: user.userId }, user.pairs[1]!.pairId, 'ED25519')).toBe(user.pairs[0]!.ciphertext);
  });

  it('a user the credentials source does not know is a user failure; the others go on', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const user = await backUp(transit, store);
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput(['nobody-knows-me', user.userId], 2));
    expect(result.counts).toMatchObject({ usersVisited: 1, usersFailed: 1, clientCiphertexts: { rewrapped: 2 } });
    expect(result.failures).toEqual([expect.objectContaining({ userId: 'nobody-knows-me', kind: 'user', reason: expect.stringContaining('UnknownUserError') })]);
  });

  it('http store: the one-record-per-user layout refuses rotation before anything changes; the per-pair layout replaces', async () => {
    const { transit } = await freshKey();
    const perUser = new HttpCiphertextStore({ writeUrl: endpoint.template, readUrl: endpoint.template, timeoutMs: 2_000 });
    const refused = createKeyRotationActivities(rotationDeps(transit, perUser));
    const failure = await failureOf(run(new MockActivityEnvironment(), refused.readTransitKey));
    expect(failure).toMatchObject({ type: 'CiphertextReplaceUnsupportedError', nonRetryable: true });
    expect(failure.message).toContain('{pairId}');
    expect((await transit.keyVersions()).latestVersion).toBe(1);

    const template = `${endpoint.template}?pair={pairId}`;
    const perPair = new HttpCiphertextStore({ writeUrl: template, readUrl: template, timeoutMs: 2_000 });
    const user = await backUp(transit, perPair);
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, perPair));
    await run(new MockActivityEnvironment(), activities.readTransitKey);
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(result.counts.clientCiphertexts).toEqual({ rewrapped: 2, alreadyCurrent: 0, verified: 2, failed: 0 });
    for (const pair of user.pairs) expect(await storedState(transit, perPair, user.userId, pair)).toMatchObject({ version: 2, decrypts: true });
  });

  it('copies in several stores (CIPHERTEXT_STORES): rotation refuses before anything changes when one of them cannot replace', async () => {
    const { transit } = await freshKey();
    const store = new PostgresCiphertextStore(new ClientCiphertextRepository(pool));
    const perUser = new HttpCiphertextStore({ writeUrl: endpoint.template, readUrl: endpoint.template, timeoutMs: 2_000 });
    const activities = createKeyRotationActivities(rotationDeps(transit, store, { copies: [store, perUser] }));
    const failure = await failureOf(run(new MockActivityEnvironment(), activities.readTransitKey));
    expect(failure).toMatchObject({ type: 'CiphertextReplaceUnsupportedError', nonRetryable: true });
    expect(failure.message).toContain('CIPHERTEXT_STORES=postgres,http');
    expect((await transit.keyVersions()).latestVersion).toBe(1);
    const both = createKeyRotationActivities(rotationDeps(transit, store, { copies: [new PortalCiphertextStore(portal, credentials()), store] }));
    expect(await run(new MockActivityEnvironment(), both.readTransitKey)).toMatchObject({ storeKind: 'portal,postgres' });
  });

  it('checkBeforeRaise names running pre-rotation backups and database rows below the version; the raise is idempotent and never above the latest version', async () => {
    const { transit } = await freshKey();
    const store = new PostgresCiphertextStore(new ClientCiphertextRepository(pool));
    const user = await backUp(transit, store);
    await transit.rotateKey();
    const queue = `nobody-${hex()}`;
    const workflowId = `backup-${user.userId}`;
    await temporal.workflow.start('backupWallet', { taskQueue: queue, workflowId, args: [{ userId: user.userId }] });
    startedWorkflows.push(workflowId);
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    const rotatedAtMs = Date.now() + 1_000;
    const blocked = await eventuallyValue(async () => {
      const check = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { rotationId: 'r', targetVersion: 2, rotatedAtMs, backupTaskQueue: queue });
      return check.reasons.some((r) => r.includes(workflowId)) ? check : undefined;
    });
    expect(blocked.reasons.join('\n')).toMatch(/client_ciphertexts holds [0-9]+ ciphertext/);
    // Narrowed to another queue (the backups of another deployment), it is not this rotation's business…
    const elsewhere = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { rotationId: 'r', targetVersion: 2, rotatedAtMs, backupTaskQueue: `other-${hex()}` });
    expect(elsewhere.reasons.some((r) => r.includes(workflowId))).toBe(false);
    // …but without a queue (a rotation on a worker pool of its own) every queue is looked at.
    // (Other test files' backups may run too, and the reason names only the first ten: count them.)
    const everywhere = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { rotationId: 'r', targetVersion: 2, rotatedAtMs });
    const count = (reasons: string[]) => Number(/^(\d+) backup\(s\) or recoveries started before the rotation still run/m.exec(reasons.join('\n'))?.[1] ?? 0);
    expect(count(everywhere.reasons)).toBeGreaterThanOrEqual(count(blocked.reasons));
    expect(count(blocked.reasons)).toBeGreaterThanOrEqual(1);

    // The raise acts only on a check that found nothing in the way (its receipt): here, one made once the rows are rewrapped.
    const raise = (version: number, check: unknown) => run(new MockActivityEnvironment(), activities.raiseMinDecryptionVersion, { rotationId: 'r', version, check });
    expect(await failureOf(raise(2, undefined))).toMatchObject({ type: 'StepReceiptInvalidError', nonRetryable: true });
    expect(await failureOf(raise(2, blocked.receipt))).toMatchObject({ type: 'StepReceiptInvalidError' });
    expect(blocked.receipt).toBeUndefined();
    expect((await transit.keyVersions()).minDecryptionVersion).toBe(1);
    const clean = receipts.issue('RAISE_CHECK', MOCK_RUN, { rotationId: 'r', targetVersion: '3', verdict: 'nothing-in-the-way' });
    expect(await failureOf(raise(3, clean))).toMatchObject({ type: 'VaultRequestError', nonRetryable: true });
    const check2 = receipts.issue('RAISE_CHECK', MOCK_RUN, { rotationId: 'r', targetVersion: '2', verdict: 'nothing-in-the-way' });
    expect(await failureOf(raise(2, { ...check2, mac: 'a'.repeat(64) }))).toMatchObject({ type: 'StepReceiptInvalidError' });
    expect(await raise(2, check2)).toEqual({ minDecryptionVersion: 2 });
    expect(await raise(2, check2)).toEqual({ minDecryptionVersion: 2 });
    expect(await transit.keyVersions()).toMatchObject({ latestVersion: 2, minDecryptionVersion: 2 });
  });
});

describe('a rotation over part of the users (issue 15, item 4)', () => {
  it('Portal store: the raise is refused unless the source lists every user (the store cannot be listed); the PostgreSQL store is counted instead', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const listed = await backUp(transit, store);
    const unlisted = await backUp(transit, store);
    await transit.rotateKey();
    // Portal-Managed: no company database (other tests' custodian rows would add reasons of their own).
    const activities = createKeyRotationActivities(rotationDeps(transit, store, { database: undefined }));
    const rewrapped = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([listed.userId], 2));
    expect(rewrapped.counts.clientCiphertexts).toMatchObject({ rewrapped: 2, failed: 0 });
    // Backups of other test files may run on other queues: look only at a queue nobody uses.
    const rotationId = `rot-${hex()}`;
    const check = { rotationId, targetVersion: 2, rotatedAtMs: Date.now(), backupTaskQueue: `nobody-${hex()}` };
    const census = (userIds: string[]) => run(new MockActivityEnvironment(), censusOf(store).censusBeforeRaise, { rotationId, targetVersion: 2, source: { kind: 'list', userIds }, pageSize: 1 });
    const listedOnly = await census([listed.userId]);
    expect(listedOnly).toMatchObject({ usersCounted: 1, ciphertextsCounted: 2, stale: 0, unreadable: 0 });
    const refused = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { ...check, census: listedOnly });
    expect(refused.reasons).toEqual([expect.stringContaining('the portal store cannot be listed')]);
    expect(refused.reasons[0]).toContain('--every-user');
    expect(refused.receipt).toBeUndefined();
    // The user the source did not list is still on version 1: a raise now would lose it.
    expect((await storedState(transit, store, unlisted.userId, unlisted.pairs[0]!)).version).toBe(1);
    // Declared "every user" without a census, or with one completed from outside: refused.
    const noCensus = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { ...check, everyUser: true });
    expect(noCensus.reasons).toEqual([expect.stringContaining('no census of the store was made')]);
    const forged = { usersCounted: 2, ciphertextsCounted: 4, receipt: { step: 'ROTATION_CENSUS', keyId: 's1', mac: 'b'.repeat(64) } };
    const forgedCheck = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { ...check, everyUser: true, census: forged as never });
    expect(forgedCheck.reasons).toEqual([expect.stringContaining("the census of the store is not a worker's")]);
    // A census over both users (a source that does list every user) finds the unlisted one's old ciphertexts: no receipt.
    const both = await census([listed.userId, unlisted.userId]);
    expect(both).toMatchObject({ usersCounted: 2, ciphertextsCounted: 4, stale: 2, unreadable: 0 });
    expect(both.receipt).toBeUndefined();
    expect(both.sample.join('\n')).toContain(`${unlisted.userId}/`);
    // Its counts cannot be borrowed for the smaller census's receipt either.
    const borrowed = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { ...check, everyUser: true, census: { ...listedOnly, usersCounted: 2, ciphertextsCounted: 4 } });
    expect(borrowed.reasons).toEqual([expect.stringContaining("the census of the store is not a worker's")]);
    // Once both are rewrapped, the census over both has its receipt, and the check gives its own.
    await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([unlisted.userId], 2));
    const clean = await census([listed.userId, unlisted.userId]);
    expect(clean).toMatchObject({ usersCounted: 2, ciphertextsCounted: 4, stale: 0, unreadable: 0 });
    const declared = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { ...check, everyUser: true, census: clean });
    expect(declared.reasons).toEqual([]);
    expect(declared.receipt).toMatchObject({ step: 'RAISE_CHECK' });
    // The PostgreSQL store's rows are counted instead: no declaration is asked for.
    const postgres = createKeyRotationActivities(rotationDeps(transit, new PostgresCiphertextStore(new ClientCiphertextRepository(pool))));
    const counted = await run(new MockActivityEnvironment(), postgres.checkBeforeRaise, check);
    expect(counted.reasons.join('\n')).not.toContain('census');
    expect(counted.reasons.join('\n')).not.toContain('cannot be listed');
  });

  it('the census resumes from its own sealed checkpoint and ignores heartbeat details recorded from outside (they would skip users)', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const input = { rotationId: `rot-${hex()}`, targetVersion: 2, source: { kind: 'list' as const, userIds: users.map((u) => u.userId) }, pageSize: 1 };
    // Its own checkpoints, as heartbeats carry them: the one after the first user resumes there.
    const first = new MockActivityEnvironment();
    const beats: unknown[] = [];
    first.on('heartbeat', (details: unknown) => beats.push(details));
    expect(await run(first, censusOf(store).censusBeforeRaise, input)).toMatchObject({ usersCounted: 2, stale: 4 });
    const afterFirstUser = beats.find((beat) => (beat as { counts: { usersCounted: number } }).counts.usersCounted === 1);
    expect(afterFirstUser).toBeDefined();
    const pagesRead = (details: unknown) => {
      const env = new MockActivityEnvironment({ heartbeatDetails: details });
      const listIndexes: number[] = [];
      env.on('heartbeat', (beat: { position: { listIndex: number } }) => listIndexes.push(beat.position.listIndex));
      return { env, listIndexes };
    };
    const resuming = pagesRead(afterFirstUser);
    expect(await run(resuming.env, censusOf(store).censusBeforeRaise, input)).toMatchObject({ usersCounted: 2, stale: 4 });
    expect(Math.min(...resuming.listIndexes)).toBe(1); // the first user was not read again
    // Details recorded by id from outside ("both users done, nothing stale"), unsealed or with the seal of other counts: counted again from the start.
    const forgedBeat = { position: { listIndex: 2, inPage: 0 }, counts: { usersCounted: 2, ciphertextsCounted: 4, stale: 0, unreadable: 0, sample: [] } };
    for (const details of [forgedBeat, { ...forgedBeat, seal: (afterFirstUser as { seal: unknown }).seal }]) {
      const again = pagesRead(details);
      const census = await run(again.env, censusOf(store).censusBeforeRaise, input);
      expect(census).toMatchObject({ usersCounted: 2, ciphertextsCounted: 4, stale: 4 });
      expect(Math.min(...again.listIndexes)).toBe(0);
      expect(census.receipt).toBeUndefined();
    }
  });

  it('a resumed census that fails before it moves is paced from its checkpoint’s last move, not from its first scheduling', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const input = { rotationId: `rot-${hex()}`, targetVersion: 2, source: { kind: 'list' as const, userIds: users.map((u) => u.userId) }, pageSize: 1 };
    const first = new MockActivityEnvironment();
    const beats: { counts: { usersCounted: number }; progressAtMs?: number }[] = [];
    first.on('heartbeat', (details: (typeof beats)[number]) => beats.push(structuredClone(details)));
    await run(first, censusOf(store).censusBeforeRaise, input);
    // The last checkpoint before the second user: the next attempt's first step is that user.
    const afterFirstUser = beats.filter((beat) => beat.counts.usersCounted === 1).at(-1)!;
    // Found in the 1,000-backup cluster campaign: the attempt after one that moved failed at its first
    // user, and waited a minute because the census had been scheduled long before.
    simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, userId: users[1]!.userId });
    try {
      const longAgo = Date.now() - 2 * OUTAGE_AFTER_NO_PROGRESS_MS;
      const resumed = new MockActivityEnvironment({ attempt: 30, scheduledTimestampMs: longAgo, heartbeatDetails: { ...afterFirstUser, progressAtMs: Date.now() - 1_000 } });
      const failure = await failureOf(run(resumed, censusOf(store).censusBeforeRaise, input));
      expect(failure).toMatchObject({ type: 'PortalUnavailableError', nonRetryable: false });
      expect(failure.nextRetryDelay).toBeLessThan(OUTAGE_RETRY_INTERVAL_MS);
    } finally {
      simulator.faults.clear();
    }
  });

  it('a user whose reads fail transiently is put aside and read again after the others: the attempt goes on, and nobody counts twice', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const input = { rotationId: `rot-${hex()}`, targetVersion: 2, source: { kind: 'list' as const, userIds: users.map((u) => u.userId) }, pageSize: 2 };
    // The first user's second read (its first ciphertext) fails once, after its Portal read was counted.
    simulator.faults.add({ route: 'getCipherText', kind: 'status', status: 503, userId: users[0]!.userId, count: 1 });
    try {
      const env = new MockActivityEnvironment();
      const beats: { position: { deferred?: string[] }; counts: { usersCounted: number } }[] = [];
      env.on('heartbeat', (details: (typeof beats)[number]) => beats.push(structuredClone(details)));
      const census = await run(env, censusOf(store).censusBeforeRaise, input);
      // One attempt, every user counted once: 3 users, 2 stale ciphertexts each.
      expect(census).toMatchObject({ usersCounted: 3, ciphertextsCounted: 6, stale: 6, unreadable: 0 });
      // It was put aside (in the sealed checkpoint) while the others were counted, then read again.
      const aside = beats.filter((beat) => beat.position.deferred?.includes(users[0]!.userId));
      expect(aside.length).toBeGreaterThan(0);
      expect(Math.max(...aside.map((beat) => beat.counts.usersCounted))).toBe(2);
      expect(beats.at(-1)!.position.deferred ?? []).toEqual([]);
    } finally {
      simulator.faults.clear();
    }
  });

  it('a census whose users keep failing stops the attempt (an outage is left to the paced retry), keeping the users put aside in its checkpoint', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const users = [await backUp(transit, store), await backUp(transit, store)];
    await transit.rotateKey();
    const input = { rotationId: `rot-${hex()}`, targetVersion: 2, source: { kind: 'list' as const, userIds: users.map((u) => u.userId) }, pageSize: 1 };
    simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, userId: users[1]!.userId });
    try {
      const env = new MockActivityEnvironment();
      const beats: { position: { deferred?: string[] }; counts: { usersCounted: number } }[] = [];
      env.on('heartbeat', (details: (typeof beats)[number]) => beats.push(structuredClone(details)));
      const failure = await failureOf(run(env, censusOf(store).censusBeforeRaise, input));
      expect(failure).toMatchObject({ type: 'PortalUnavailableError', nonRetryable: false });
      expect(beats.at(-1)).toMatchObject({ position: { deferred: [users[1]!.userId] }, counts: { usersCounted: 1 } });
      // The next attempt, once Portal answers, reads only the user put aside.
      simulator.faults.clear();
      const resumed = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
      expect(await run(resumed, censusOf(store).censusBeforeRaise, input)).toMatchObject({ usersCounted: 2, ciphertextsCounted: 4, stale: 4 });
    } finally {
      simulator.faults.clear();
    }
  });

  it('a recovery or eject that read a ciphertext before its rewrap reads it again; one still below the minimum is "being rewrapped, retry" (retryable), not an invalid backup', async () => {
    const { transit } = await freshKey();
    const store = new PortalCiphertextStore(portal, credentials());
    const rewrapped = await backUp(transit, store);
    const missed = await backUp(transit, store);
    const pairIdsOf = (user: typeof rewrapped) => Object.fromEntries(user.pairs.map((pair) => [pair.curve, pair.pairId])) as Record<(typeof CURVES)[number], string>;
    const ciphertextsOf = (user: typeof rewrapped) => Object.fromEntries(user.pairs.map((pair) => [pair.curve, pair.ciphertext])) as Record<(typeof CURVES)[number], string>;
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, store));
    await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([rewrapped.userId], 2));
    await transit.setMinDecryptionVersion(2);
    // Read before the rewrap (version 1), opened after the raise: the store holds version 2 now.
    const shares = await requireStoredBackup(transit, store, rewrapped.userId, pairIdsOf(rewrapped), ciphertextsOf(rewrapped));
    expect(CURVES.map((curve) => sharePlaintext(shares[curve]).toString('hex'))).toEqual(
      CURVES.map((curve) => sharePlaintext(rewrapped.shares[curve]).toString('hex')),
    );
    const error = await requireStoredBackup(transit, store, missed.userId, pairIdsOf(missed), ciphertextsOf(missed)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CiphertextBeingRewrappedError);
    expect((error as CiphertextBeingRewrappedError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/key version 1, below the key's min_decryption_version: being rewrapped by a key rotation, retry/);
  });
});

/** Visibility is eventually consistent: polls until `check` returns a value. */
async function eventuallyValue<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('a rotation over copies (CIPHERTEXT_STORES=portal,postgres; issue 18)', () => {
  const portalStore = () => new PortalCiphertextStore(portal, credentials());
  const postgresStore = () => new PostgresCiphertextStore(new ClientCiphertextRepository(pool));

  /** A user backed up with a copy in each store: the same ciphertext string in both, as a backup writes them. */
  async function backUpCopies(transit: VaultTransit, stores: CiphertextStore[]) {
    const user = await backUp(transit, stores[0]!);
    for (const store of stores.slice(1)) await store.put({ userId: user.userId }, user.pairs.map(({ curve, pairId, ciphertext }) => ({ curve, pairId, ciphertext })), { freshPairs: true });
    return user;
  }

  it('each pair is rewrapped once and the same new ciphertext written to every copy; each copy is counted, and a second pass finds them current', async () => {
    const { transit } = await freshKey();
    const stores = [portalStore(), postgresStore()];
    const user = await backUpCopies(transit, stores);
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, stores[0]!, { copies: stores }));
    expect(await run(new MockActivityEnvironment(), activities.readTransitKey)).toMatchObject({ storeKind: 'portal,postgres' });
    const env = new MockActivityEnvironment();
    const heartbeats: RewrapCheckpoint[] = [];
    env.on('heartbeat', (details: RewrapCheckpoint) => heartbeats.push(structuredClone(details)));
    const result = await run(env, activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(result.counts).toMatchObject({ usersVisited: 1, clientCiphertexts: { rewrapped: 4, alreadyCurrent: 0, verified: 4, failed: 0 } });
    expect(result.counts.copiesMissing).toBeUndefined();
    for (const pair of user.pairs) {
      const [atPortal, inPostgres] = [await storedState(transit, stores[0]!, user.userId, pair), await storedState(transit, stores[1]!, user.userId, pair)];
      expect(atPortal).toMatchObject({ version: 2, decrypts: true });
      expect(inPostgres.stored).toBe(atPortal.stored);
    }
    // Progress per copy, named by store; ids only.
    const done = heartbeats.map((h) => h.user?.done ?? []).reduce((longest, d) => (d.length > longest.length ? d : longest), [] as string[]);
    expect([...done].sort()).toEqual(user.pairs.flatMap((pair) => [`client-ciphertext@portal:${pair.pairId}`, `client-ciphertext@postgres:${pair.pairId}`]).sort());
    // Each pair's copies in the configured order, the primary first.
    expect(done.filter((_, index) => index % 2 === 0).every((key) => key.startsWith('client-ciphertext@portal:'))).toBe(true);
    expect(JSON.stringify(heartbeats)).not.toMatch(/vault:v|[0-9a-f]{64}/);
    const second = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(second.counts.clientCiphertexts).toEqual({ rewrapped: 0, alreadyCurrent: 4, verified: 4, failed: 0 });
    // The census reads every copy: all current, so it has its receipt.
    const census = await run(new MockActivityEnvironment(), censusOf(stores[0]!, stores).censusBeforeRaise, { rotationId: `rot-${hex()}`, targetVersion: 2, source: { kind: 'list', userIds: [user.userId] } });
    expect(census).toMatchObject({ usersCounted: 1, ciphertextsCounted: 4, stale: 0, unreadable: 0 });
    expect(census.receipt).toMatchObject({ step: 'ROTATION_CENSUS' });
  });

  it('a copy missing from one store is reported by store (a failure: it blocks the raise), never recreated; the census names it and gives no receipt', async () => {
    const { transit } = await freshKey();
    const stores = [portalStore(), postgresStore()];
    const user = await backUpCopies(transit, stores);
    const lost = user.pairs[1]!;
    await pool.query('DELETE FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [user.userId, lost.pairId]);
    // And pairs never marked, stored at Portal only (a backup that failed between its copies): not the newest completed backup.
    const unmarked = await backUp(transit, stores[0]!, { userId: user.userId, mark: false });
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, stores[0]!, { copies: stores, database: undefined }));
    const result = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(result.counts).toMatchObject({ usersVisited: 1, copiesMissing: 1, copiesAbsentElsewhere: 2, pairsWithoutCiphertext: 0, clientCiphertexts: { rewrapped: 5, failed: 1 } });
    for (const pair of unmarked.pairs) expect(await storedState(transit, stores[0]!, user.userId, pair)).toMatchObject({ version: 2, decrypts: true });
    expect(result.failures).toEqual([
      { userId: user.userId, pairId: lost.pairId, kind: 'client-ciphertext', store: 'postgres', reason: expect.stringContaining('backup copies repair') },
    ]);
    // Not recreated by the rotation; the other copy of the pair is rewrapped.
    await expect(stores[1]!.get({ userId: user.userId }, lost.pairId, lost.curve)).rejects.toThrow();
    expect(await storedState(transit, stores[0]!, user.userId, lost)).toMatchObject({ version: 2, decrypts: true });
    const rotationId = `rot-${hex()}`;
    const census = await run(new MockActivityEnvironment(), censusOf(stores[0]!, stores).censusBeforeRaise, { rotationId, targetVersion: 2, source: { kind: 'list', userIds: [user.userId] } });
    expect(census).toMatchObject({ usersCounted: 1, ciphertextsCounted: 5, stale: 0, unreadable: 0, copiesMissing: 1 });
    expect(census.receipt).toBeUndefined();
    expect(census.sample).toEqual([`${user.userId}/${lost.pairId}: no copy in the postgres store`]);
    const check = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { rotationId, targetVersion: 2, rotatedAtMs: Date.now(), backupTaskQueue: `nobody-${hex()}`, everyUser: true, census });
    expect(check.reasons.join('\n')).toContain('census');
    expect(check.receipt).toBeUndefined();
  });

  it('a copy on an old version blocks the raise: the census counts it by store, and the check gives no receipt', async () => {
    const { transit } = await freshKey();
    const stores = [portalStore(), postgresStore()];
    const user = await backUpCopies(transit, stores);
    await transit.rotateKey();
    const activities = createKeyRotationActivities(rotationDeps(transit, stores[0]!, { copies: stores, database: undefined }));
    await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    // The PostgreSQL copy of one pair back on version 1 (a repair racing the rotation would leave it so).
    const old = user.pairs[0]!;
    const rewrapped = await stores[1]!.get({ userId: user.userId }, old.pairId, old.curve);
    expect(await stores[1]!.replace!({ userId: user.userId }, { curve: old.curve, pairId: old.pairId, ciphertext: old.ciphertext }, rewrapped)).toBe('replaced');
    const rotationId = `rot-${hex()}`;
    const census = await run(new MockActivityEnvironment(), censusOf(stores[0]!, stores).censusBeforeRaise, { rotationId, targetVersion: 2, source: { kind: 'list', userIds: [user.userId] } });
    expect(census).toMatchObject({ ciphertextsCounted: 4, stale: 1 });
    expect(census.sample).toEqual([`${user.userId}/${old.pairId} (postgres copy): version 1`]);
    expect(census.receipt).toBeUndefined();
    const check = await run(new MockActivityEnvironment(), activities.checkBeforeRaise, { rotationId, targetVersion: 2, rotatedAtMs: Date.now(), backupTaskQueue: `nobody-${hex()}`, everyUser: true, census });
    expect(check.receipt).toBeUndefined();
    // With the database, the check counts the PostgreSQL copies itself too.
    const withDatabase = createKeyRotationActivities(rotationDeps(transit, stores[0]!, { copies: stores }));
    const counted = await run(new MockActivityEnvironment(), withDatabase.checkBeforeRaise, { rotationId, targetVersion: 2, rotatedAtMs: Date.now(), backupTaskQueue: `nobody-${hex()}`, everyUser: true, census });
    expect(counted.reasons.join('\n')).toMatch(/client_ciphertexts holds [0-9]+ ciphertext/);
    // A second pass rewraps it to the ciphertext its other copy holds: one string again.
    const again = await run(new MockActivityEnvironment(), activities.rewrapUsers, rewrapInput([user.userId], 2));
    expect(again.counts.clientCiphertexts).toEqual({ rewrapped: 1, alreadyCurrent: 3, verified: 4, failed: 0 });
    expect(await stores[1]!.get({ userId: user.userId }, old.pairId, old.curve)).toBe(await stores[0]!.get({ userId: user.userId }, old.pairId, old.curve));
  });

  it('a store down mid-rotation: the attempt fails retryable with its per-copy checkpoint, and the retry resumes there, writing each copy once', async () => {
    const { transit } = await freshKey();
    const real = [portalStore(), postgresStore()];
    const user = await backUpCopies(transit, real);
    await transit.rotateKey();
    let attempt = 1;
    let firstPostgres: string | undefined;
    const calls: { attempt: number; store: string; op: 'get' | 'replace'; pairId: string }[] = [];
    const watched = real.map((store): CiphertextStore => ({
      kind: store.kind,
      put: (context, ciphertexts, options) => store.put(context, ciphertexts, options),
      get: (context, pairId, curve) => {
        calls.push({ attempt, store: store.kind, op: 'get', pairId });
        return store.get(context, pairId, curve);
      },
      replace: (context, next, expectedOld) => {
        calls.push({ attempt, store: store.kind, op: 'replace', pairId: next.pairId });
        // Attempt 1: PostgreSQL is down once the first pair's copies and the second's Portal copy are written.
        if (attempt === 1 && store.kind === 'postgres') {
          firstPostgres ??= next.pairId;
          if (next.pairId !== firstPostgres) return Promise.reject(new CiphertextStoreUnavailableError('PostgreSQL is down (injected)'));
        }
        return store.replace!(context, next, expectedOld);
      },
    }));
    const activities = createKeyRotationActivities(rotationDeps(transit, watched[0]!, { copies: watched, database: undefined }));
    const input = rewrapInput([user.userId], 2);
    const first = new MockActivityEnvironment({ attempt: 1 });
    const heartbeats: RewrapCheckpoint[] = [];
    first.on('heartbeat', (details: RewrapCheckpoint) => heartbeats.push(structuredClone(details)));
    const failure = await failureOf(run(first, activities.rewrapUsers, input));
    expect(failure).toMatchObject({ type: 'CiphertextStoreUnavailableError', nonRetryable: false });
    const saved = heartbeats.at(-1)!;
    const firstPair = user.pairs.find((pair) => pair.pairId === firstPostgres);
    const secondPair = user.pairs.find((pair) => pair.pairId !== firstPostgres);
    expect(saved.user!.done).toEqual([`client-ciphertext@portal:${firstPair!.pairId}`, `client-ciphertext@postgres:${firstPair!.pairId}`, `client-ciphertext@portal:${secondPair!.pairId}`]);
    expect(saved.result.counts.clientCiphertexts).toMatchObject({ rewrapped: 3, failed: 0 });
    expect(await real[1]!.get({ userId: user.userId }, secondPair!.pairId, secondPair!.curve)).toBe(secondPair!.ciphertext);

    // The store is back: the retry resumes at the PostgreSQL copy of the second pair.
    attempt = 2;
    const result = await run(new MockActivityEnvironment({ attempt: 2, heartbeatDetails: saved }), activities.rewrapUsers, input);
    expect(result.counts).toMatchObject({ usersVisited: 1, clientCiphertexts: { rewrapped: 4, alreadyCurrent: 0, verified: 4, failed: 0 } });
    expect(result.failures).toEqual([]);
    // The first pair is not read again; of the second, only the PostgreSQL copy is written (with the Portal copy's new ciphertext, no second rewrap).
    expect(calls.filter((c) => c.attempt === 2 && c.pairId === firstPair!.pairId)).toEqual([]);
    expect(calls.filter((c) => c.attempt === 2 && c.op === 'replace')).toEqual([{ attempt: 2, store: 'postgres', op: 'replace', pairId: secondPair!.pairId }]);
    for (const pair of user.pairs) {
      const atPortal = await storedState(transit, real[0]!, user.userId, pair);
      expect(atPortal).toMatchObject({ version: 2, decrypts: true });
      expect(await real[1]!.get({ userId: user.userId }, pair.pairId, pair.curve)).toBe(atPortal.stored);
    }
  });
});
