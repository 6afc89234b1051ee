import { CURVES } from '../../domain/curves';
import { backupWorkflowId } from '../../domain/user-id';
import { sealingDeps } from '../../activities/step-receipts';
import { randomBytes } from 'node:crypto';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { failureOf } from '../support/failure-of';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities, sharePlaintext, type ActivityDeps } from '../../activities';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { PortalClient } from '../../adapters/portal/portal-client';
import { BackupModeCheck } from '../../activities/backup/backup-mode';
import { transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import type { EncryptedShares } from '../../domain/backup-types';
import { CiphertextConflictError, CiphertextNotFoundError, CiphertextStoreUnavailableError } from '../../domain/errors';
import { secretsOf } from '../../chaos/secret-scan';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

let simulator: PortalSimulator;
let portal: PortalClient;
let transit: VaultTransit;

beforeAll(async () => {
  simulator = await startPortalSimulator({ seed: 11 });
  portal = new PortalClient({
    enclaveUrl: simulator.url,
    apiUrl: simulator.url,
    timeoutMs: 3_000,
    storeCipherTextMethod: 'POST',
    maxResponseBytes: 1024 * 1024,
  });
  transit = new VaultTransit(
    { endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 },
    new StaticTokenAuth(inject('vaultToken')),
  );
});
afterAll(() => simulator?.close());

/** The simulator's company-backend credentials route, as the worker reads it. */
function credentialsFor() {
  return new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 3_000 });
}

function deps(overrides: Partial<ActivityDeps> = {}): ActivityDeps {
  return {
    credentials: credentialsFor(),
    portal,
    transit,
    store: new PortalCiphertextStore(portal, credentialsFor()),
    ...sealingDeps({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) }),
    heartbeatIntervalMs: 50,
    orphanScanSkewMs: 30_000,
    maxNotReadableAttempts: 10,
    modeCheck: new BackupModeCheck('portal-managed', portal, 60_000),
    maxCustodianWaitAttempts: 5,
    ...overrides,
  };
}

/** A user with step 1 and 2 done for real: pairs at Portal, ciphertexts from Vault. */
async function encryptedFor(activities: ReturnType<typeof createActivities>) {
  const userId = `act-${randomBytes(3).toString('hex')}`;
  simulator.state.seedUser(userId);
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: backupWorkflowId(userId), runId: 'run-1' } });
  const step1 = await run(env, activities.mpcBackup, { userId });
  const encrypted = await run(env, activities.encryptShares, { userId, sealedShares: step1.sealedShares });
  return { userId, step1, encrypted };
}

/** MockActivityEnvironment.run with the activity's own argument and result types. */
function run<A extends unknown[], R>(env: MockActivityEnvironment, fn: (...args: A) => Promise<R>, ...args: A): Promise<R> {
  return env.run(fn, ...args) as Promise<R>;
}

/**
 * Runs the store step's attempt 1 with `count` 503s on `route` (it must fail, retryably), then
 * attempt 2 without faults; returns the Portal reads and writes attempt 2 made.
 */
async function retriedStoreAfter(fault: { route: 'getCipherText' | 'storeCipherText'; count: number }) {
  const activities = createActivities(deps());
  const { userId, encrypted } = await encryptedFor(activities);
  simulator.faults.add({ ...fault, kind: 'status', status: 503, userId });
  const first = await failureOf(run(new MockActivityEnvironment({ attempt: 1 }), activities.storeCiphertexts, { userId, encrypted }));
  expect(first).toMatchObject({ nonRetryable: false });
  simulator.faults.clear();
  const before = { ...simulator.calls };
  await run(new MockActivityEnvironment({ attempt: 2 }), activities.storeCiphertexts, { userId, encrypted });
  const delta = (route: string) => (simulator.calls[route] ?? 0) - (before[route] ?? 0);
  return { calls: { reads: delta('getCipherText'), writes: delta('storeCipherText') }, userId, encrypted };
}

describe('backup activities (MockActivityEnvironment, real Vault, Portal simulator)', () => {
  it('step 1 returns the shares sealed: its result holds no share, and step 2 opens them only for the same user', async () => {
    const activities = createActivities(deps());
    const { userId, step1 } = await encryptedFor(activities);
    const client = simulator.state.user(userId)!;
    const text = JSON.stringify(step1);
    expect(secretsOf(client).filter((secret) => text.includes(secret))).toEqual([]);
    const pairIds = client.wallets.flatMap((w) => w.backupSharePairs.map((p) => p.id));
    expect(Object.values(step1.pairIds).sort()).toEqual(pairIds.sort());
    const other = `act-other-${randomBytes(3).toString('hex')}`;
    const failure = await failureOf(run(new MockActivityEnvironment(), activities.encryptShares, { userId: other, sealedShares: step1.sealedShares }));
    expect(failure).toMatchObject({ type: 'SealedSharesError', nonRetryable: true });
  });

  it('heartbeats while a Portal call is slow', async () => {
    const activities = createActivities(deps());
    const { userId, encrypted } = await encryptedFor(activities);
    simulator.faults.add({ route: 'storeCipherText', kind: 'latency', latencyMs: 400, userId });
    const env = new MockActivityEnvironment();
    let heartbeats = 0;
    env.on('heartbeat', () => (heartbeats += 1));
    await run(env, activities.storeCiphertexts, { userId, encrypted });
    expect(heartbeats).toBeGreaterThanOrEqual(6);
    simulator.faults.clear();
  });

  it('ends at once with CancelledFailure when cancelled during a hung Portal call', async () => {
    const activities = createActivities(deps());
    const { userId, encrypted } = await encryptedFor(activities);
    simulator.faults.add({ route: 'storeCipherText', kind: 'hang', latencyMs: 10_000, userId });
    const env = new MockActivityEnvironment();
    const running = run(env, activities.storeCiphertexts, { userId, encrypted });
    setTimeout(() => env.cancel(), 200);
    // The cancellation ended it: Portal's client timeout would have failed it with a Portal error
    // instead (the hang outlasts that timeout), however slow the machine.
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    simulator.faults.clear();
  });

  it('a store that returns another ciphertext fails verification, permanently', async () => {
    const honest = new PortalCiphertextStore(portal, credentialsFor());
    const swapping: CiphertextStore = {
      kind: 'swapping',
      put: (context, ciphertexts, options) => honest.put(context, ciphertexts, options),
      get: async (context, pairId, curve) => `${await honest.get(context, pairId, curve)}x`,
    };
    const activities = createActivities(deps({ store: swapping }));
    const { userId, encrypted } = await encryptedFor(activities);
    const failure = await failureOf(run(new MockActivityEnvironment(), activities.storeCiphertexts, { userId, encrypted }));
    expect(failure).toMatchObject({ type: 'CiphertextVerificationError', nonRetryable: true });
    expect(failure.message).toContain('differs from the one written');
  });

  it('a ciphertext that does not decrypt to the encrypted share fails verification, permanently', async () => {
    const activities = createActivities(deps());
    const { userId, encrypted } = await encryptedFor(activities);
    // A valid ciphertext in the right user-and-pair context, but of other bytes than the digest says.
    const pairId = encrypted.SECP256K1.pairId;
    const [forged] = await transit.encryptBatch([
      { plaintext: sharePlaintext({ id: pairId, share: 'b3RoZXI=' }), context: transitContext(userId, pairId) },
    ]);
    const tampered: EncryptedShares = { ...encrypted, SECP256K1: { ...encrypted.SECP256K1, ciphertext: forged! } };
    const failure = await failureOf(run(new MockActivityEnvironment(), activities.storeCiphertexts, { userId, encrypted: tampered }));
    expect(failure).toMatchObject({ type: 'CiphertextVerificationError', nonRetryable: true });
    expect(failure.message).toContain('does not decrypt to the share that was encrypted');
  });

  it('a read-back that stays 404 is retried a bounded number of times, then parks with the reason', async () => {
    const honest = new PortalCiphertextStore(portal, credentialsFor());
    // Writes, and never finds what it wrote (neither in its write-once look nor on read-back).
    const losing: CiphertextStore = {
      kind: 'losing',
      put: async (context, ciphertexts, options) => {
        await honest.put(context, ciphertexts, options);
        return { alreadyStored: [] };
      },
      get: async (_context, pairId) => {
        throw new CiphertextNotFoundError(`the store has no ciphertext for ${pairId}`);
      },
    };
    const activities = createActivities(deps({ store: losing, maxNotReadableAttempts: 10 }));
    const { userId, encrypted } = await encryptedFor(activities);
    const early = await failureOf(run(new MockActivityEnvironment({ attempt: 3 }), activities.storeCiphertexts, { userId, encrypted }));
    expect(early).toMatchObject({ type: 'CiphertextStoreUnavailableError', nonRetryable: false });
    const late = await failureOf(run(new MockActivityEnvironment({ attempt: 10 }), activities.storeCiphertexts, { userId, encrypted }));
    expect(late).toMatchObject({ type: 'CiphertextNotReadableError', nonRetryable: true });
    expect(late.message).toContain('still has none after 10 attempts');
  });
  it('a retried store step resumes: what an earlier attempt stored is looked at once, never written or read back again', async () => {
    // Attempt 1 writes both ciphertexts, then both read-backs fail (a transient Portal error).
    const { calls, userId, encrypted } = await retriedStoreAfter({ route: 'getCipherText', count: 2 });
    // One look per pair (which is its read-back); a restart would have read each twice.
    expect(calls).toEqual({ reads: 2, writes: 0 });
    for (const pair of simulator.state.user(userId)!.wallets.flatMap((w) => w.backupSharePairs)) {
      expect(pair.clientCipherText).toBe(CURVES.map((curve) => encrypted[curve]).find((e) => e.pairId === pair.id)!.ciphertext);
    }
  });

  it('a retry after one write was lost writes only that pair and reads back only that pair', async () => {
    const { calls } = await retriedStoreAfter({ route: 'storeCipherText', count: 1 });
    // Two looks, one write of the missing pair, one read-back of it.
    expect(calls).toEqual({ reads: 3, writes: 1 });
  });
});

/** A write-once store in memory (the contract of ciphertext-store.ts), whose next puts can be made to fail. */
function memoryStore(kind = 'memory') {
  const held = new Map<string, string>();
  const state = { failPuts: 0, writes: 0 };
  const store: CiphertextStore = {
    kind,
    put: async (_context, ciphertexts) => {
      if (state.failPuts > 0) {
        state.failPuts -= 1;
        throw new CiphertextStoreUnavailableError('the memory store is down');
      }
      const alreadyStored: string[] = [];
      for (const { pairId, ciphertext } of ciphertexts) {
        const existing = held.get(pairId);
        if (existing === ciphertext) alreadyStored.push(pairId);
        else if (existing !== undefined) throw new CiphertextConflictError(`pair ${pairId} holds another ciphertext`);
      }
      for (const { pairId, ciphertext } of ciphertexts.filter((item) => !alreadyStored.includes(item.pairId))) {
        held.set(pairId, ciphertext);
        state.writes += 1;
      }
      return { alreadyStored };
    },
    get: async (_context, pairId) => {
      const ciphertext = held.get(pairId);
      if (ciphertext === undefined) throw new CiphertextNotFoundError(`no ciphertext for ${pairId}`);
      return ciphertext;
    },
  };
  return { store, held, state };
}

describe('step 3 with copies in several stores (CIPHERTEXT_STORES)', () => {
  it('writes and verifies every copy; a retry after one store was down rewrites only that store’s copies', async () => {
    const portalStore = new PortalCiphertextStore(portal, credentialsFor());
    const found: string[][] = [];
    const watched: CiphertextStore = { kind: 'portal', put: async (c, items, o) => { const r = await portalStore.put(c, items, o); found.push(r.alreadyStored); return r; }, get: (c, p, curve) => portalStore.get(c, p, curve) };
    const memory = memoryStore();
    const activities = createActivities(deps({ store: watched, copies: [watched, memory.store] }));
    const { userId, encrypted } = await encryptedFor(activities);
    memory.state.failPuts = 1;
    const down = await failureOf(run(new MockActivityEnvironment({ attempt: 1 }), activities.storeCiphertexts, { userId, encrypted }));
    expect(down).toMatchObject({ type: 'CiphertextStoreUnavailableError', nonRetryable: false });
    expect(down.message).toContain('memory copy');
    expect(memory.held.size).toBe(0);

    const result = await run(new MockActivityEnvironment({ attempt: 2 }), activities.storeCiphertexts, { userId, encrypted });
    expect(result.receipt).toBeDefined();
    // Portal's copies were there already (nothing rewritten); the memory store got both, once.
    expect(found.at(-1)?.sort()).toEqual(CURVES.map((curve) => encrypted[curve].pairId).sort());
    expect(memory.state.writes).toBe(2);
    for (const curve of CURVES) expect(memory.held.get(encrypted[curve].pairId)).toBe(encrypted[curve].ciphertext);
  });

  it('an existing copy that holds another ciphertext is CiphertextCopyDivergesError naming its store, permanently, and nothing is overwritten', async () => {
    const memory = memoryStore('second');
    const portalStore = new PortalCiphertextStore(portal, credentialsFor());
    const activities = createActivities(deps({ store: portalStore, copies: [portalStore, memory.store] }));
    const { userId, encrypted } = await encryptedFor(activities);
    memory.held.set(encrypted.SECP256K1.pairId, 'vault:v1:another');
    const failure = await failureOf(run(new MockActivityEnvironment({ attempt: 2 }), activities.storeCiphertexts, { userId, encrypted }));
    expect(failure).toMatchObject({ type: 'CiphertextCopyDivergesError', nonRetryable: true });
    expect(failure.message).toContain('the second copy holds a different ciphertext');
    expect(memory.held.get(encrypted.SECP256K1.pairId)).toBe('vault:v1:another');
  });
});
