import { createHash, randomBytes } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sharePlaintext } from '../../activities';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { createDrillActivities, type DrillActivityDeps } from '../../activities/drill/drill-activities';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { PortalClient } from '../../adapters/portal/portal-client';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { secretsOf } from '../../chaos/secret-scan';
import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { CiphertextNotFoundError } from '../../domain/errors';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';
import type { SimClient } from '../../simulator/portal-state';
import { freePort } from '../../stack/free-port';
import { TcpFaultProxy } from '../../stack/tcp-fault-proxy';
import { drillVerdictClaims, type DrillUserOutcome } from '../../contracts/restore-drill-api';
import { StepReceipts } from '../../activities/step-receipts';
import { failureOf } from '../support/failure-of';

let simulator: PortalSimulator;
let portal: PortalClient;
let transit: VaultTransit;
let vaultProxy: TcpFaultProxy;
/** Vault as the drill sees it in these tests: through a proxy the test can cut. */
let proxiedTransit: VaultTransit;

const transitAt = (endpoint: string, token = inject('vaultToken')) =>
  new VaultTransit({ endpoint, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, new StaticTokenAuth(token));

beforeAll(async () => {
  simulator = await startPortalSimulator({ seed: 19 });
  portal = new PortalClient({ enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 3_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 });
  transit = transitAt(inject('vaultAddr'));
  const vault = new URL(inject('vaultAddr'));
  vaultProxy = new TcpFaultProxy({ host: vault.hostname, port: Number(vault.port) }, await freePort());
  await vaultProxy.start();
  proxiedTransit = transitAt(`http://127.0.0.1:${vaultProxy.port}`);
});
afterAll(async () => {
  await vaultProxy?.stop();
  await simulator?.close();
});

const credentials = () => new HttpCredentialsSource({ urlTemplate: `${simulator.url}/backend/users/{userId}/credentials`, timeoutMs: 3_000 });

function drillDeps(overrides: Partial<DrillActivityDeps> = {}): DrillActivityDeps {
  return {
    credentials: credentials(),
    portal,
    transit: proxiedTransit,
    store: new PortalCiphertextStore(portal, credentials()),
    selfManaged: false,
    heartbeatIntervalMs: 50,
    receipts,
    ...overrides,
  };
}

const receipts = new StepReceipts({ activeKeyId: 's1', keys: new Map([['s1', randomBytes(32)]]) });
/** The run MockActivityEnvironment's activities belong to (its default info). */
const MOCK_RUN = { workflowId: 'test', runId: '00000000-0000-0000-0000-000000000000' };

/** The outcomes, each checked to carry the worker's receipt over exactly its verdict (then left out, to compare the verdicts). */
async function check(deps: DrillActivityDeps, userIds: string[], attempt = 1): Promise<DrillUserOutcome[]> {
  const activities = createDrillActivities(deps);
  const outcomes = (await new MockActivityEnvironment({ attempt }).run(activities.checkDrillUsers, { userIds, inconclusiveAfterAttempts: 3 })) as DrillUserOutcome[];
  return outcomes.map(({ receipt, ...verdict }) => {
    receipts.verify('DRILL_VERDICT', MOCK_RUN, drillVerdictClaims(verdict as DrillUserOutcome), receipt);
    // The same receipt over another verdict (a failure turned into a pass, a pass into a failure) is refused.
    const altered = verdict.outcome === 'passed' ? { ...verdict, outcome: 'failed', kind: 'CHECK_FAILED', reason: 'x' } : { userId: verdict.userId, outcome: 'passed' };
    expect(() => receipts.verify('DRILL_VERDICT', MOCK_RUN, drillVerdictClaims(altered as DrillUserOutcome), receipt)).toThrow(/does not match/);
    return verdict as DrillUserOutcome;
  });
}

const newUser = (prefix: string) => {
  const userId = `${prefix}-${randomBytes(3).toString('hex')}`;
  return { userId, client: simulator.state.seedUser(userId) };
};

/** A backup done the service's way, step by step through the real adapters: shares, Transit, Portal's store, marked. */
async function backedUp(prefix: string, existing?: { userId: string; client: SimClient }) {
  const { userId, client } = existing ?? newUser(prefix);
  const shares = await portal.backup(client.apiKey, client.generateResponse);
  const ciphertexts = await transit.encryptBatch(CURVES.map((curve) => ({ plaintext: sharePlaintext(shares[curve]), context: transitContext(userId, shares[curve].id) })));
  await new PortalCiphertextStore(portal, credentials()).put(
    { userId },
    CURVES.map((curve, index) => ({ curve, pairId: shares[curve].id, ciphertext: ciphertexts[index]! })),
    { freshPairs: true },
  );
  await portal.markBackupPairsStored(client.apiKey, CURVES.map((curve) => shares[curve].id));
  const pairIds = Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as BackupPairIds;
  return { userId, client, pairIds, shares };
}

const pair = (client: SimClient, pairId: string) => simulator.state.findPair(client, pairId)!;

/** The same ciphertext with one character of its base64 body changed (so one byte differs). */
function tampered(ciphertext: string): string {
  const index = ciphertext.length - 6;
  return `${ciphertext.slice(0, index)}${ciphertext[index] === 'A' ? 'B' : 'A'}${ciphertext.slice(index + 1)}`;
}

const sha256Hex = (value: string | Buffer) => createHash('sha256').update(value).digest('hex');

describe('restore drill activity (MockActivityEnvironment, real Vault, Portal simulator)', () => {
  it('passes a sound backup, skips users without a completed one, and only reads: no /v1/recover, no store, no mark', async () => {
    const sound = await backedUp('sound');
    const never = newUser('never');
    const unmarked = newUser('unmarked');
    await portal.backup(unmarked.client.apiKey, unmarked.client.generateResponse);
    const before = { ...simulator.calls };

    const outcomes = await check(drillDeps(), [sound.userId, never.userId, unmarked.userId]);

    expect(outcomes).toEqual([
      { userId: sound.userId, outcome: 'passed' },
      { userId: never.userId, outcome: 'skipped', reason: 'no completed backup at Portal' },
      { userId: unmarked.userId, outcome: 'skipped', reason: 'no completed backup at Portal' },
    ]);
    expect(simulator.calls.recover ?? 0).toBe(0);
    for (const route of ['backup', 'storeCipherText', 'markPairs', 'recover']) expect(simulator.calls[route] ?? 0).toBe(before[route] ?? 0);
  });

  it('reports each way a stored ciphertext can fail to restore, with its kind and reason, and no secret', async () => {
    // Altered in the store.
    const altered = await backedUp('altered');
    pair(altered.client, altered.pairIds.ED25519).clientCipherText = tampered(pair(altered.client, altered.pairIds.ED25519).clientCipherText!);
    // The other curve's ciphertext stored under this pair.
    const swapped = await backedUp('swapped');
    pair(swapped.client, swapped.pairIds.ED25519).clientCipherText = pair(swapped.client, swapped.pairIds.SECP256K1).clientCipherText;
    // The newest pair holds the ciphertext of the user's previous backup (e.g. a store restored from an old snapshot).
    const first = await backedUp('stale');
    const stale = await backedUp('stale', first);
    pair(stale.client, stale.pairIds.SECP256K1).clientCipherText = pair(first.client, first.pairIds.SECP256K1).clientCipherText;
    // Another user's ciphertext.
    const foreign = await backedUp('foreign');
    pair(foreign.client, foreign.pairIds.SECP256K1).clientCipherText = pair(altered.client, altered.pairIds.SECP256K1).clientCipherText;
    // Lost from the store.
    const lost = await backedUp('lost');
    delete pair(lost.client, lost.pairIds.SECP256K1).clientCipherText;
    // Encrypted in the right context, but not Portal's {id, share} of this pair.
    const notShare = await backedUp('not-share');
    const otherId = await backedUp('other-id');
    for (const [user, plaintext] of [
      [notShare, { id: notShare.pairIds.SECP256K1 }],
      [otherId, { id: otherId.pairIds.ED25519, share: otherId.shares.SECP256K1.share }],
    ] as const) {
      const [ciphertext] = await transit.encryptBatch([
        { plaintext: Buffer.from(JSON.stringify(plaintext)), context: transitContext(user.userId, user.pairIds.SECP256K1) },
      ]);
      pair(user.client, user.pairIds.SECP256K1).clientCipherText = ciphertext!;
    }
    // Half a backup: only one curve's pair is completed.
    const half = await backedUp('half');
    pair(half.client, half.pairIds.ED25519).status = 'incomplete';

    const users = [altered, swapped, stale, foreign, lost, notShare, otherId, half];
    const outcomes = await check(drillDeps(), users.map((user) => user.userId));

    const byUser = new Map(outcomes.map((outcome) => [outcome.userId, outcome]));
    const failed = (user: { userId: string }) => byUser.get(user.userId) as Extract<DrillUserOutcome, { outcome: 'failed' }>;
    expect(outcomes.every((outcome) => outcome.outcome === 'failed')).toBe(true);

    expect(failed(altered)).toMatchObject({ kind: 'CIPHERTEXT_INVALID' });
    expect(failed(altered).reason).toContain(`ED25519 pair ${altered.pairIds.ED25519} does not decrypt in the context of user ${altered.userId}`);
    expect(failed(swapped)).toMatchObject({ kind: 'CIPHERTEXT_WRONG_PAIR' });
    expect(failed(swapped).reason).toBe(
      `ED25519 pair ${swapped.pairIds.ED25519}: the store holds the ciphertext of SECP256K1 pair ${swapped.pairIds.SECP256K1} (completed) under this pair`,
    );
    expect(failed(stale)).toMatchObject({ kind: 'CIPHERTEXT_WRONG_PAIR' });
    expect(failed(stale).reason).toContain(`the store holds the ciphertext of SECP256K1 pair ${first.pairIds.SECP256K1} (completed)`);
    expect(failed(foreign)).toMatchObject({ kind: 'CIPHERTEXT_INVALID', reason: expect.stringContaining('does not decrypt') });
    expect(failed(lost)).toMatchObject({ kind: 'CIPHERTEXT_MISSING', reason: expect.stringContaining(lost.pairIds.SECP256K1) });
    expect(failed(notShare)).toMatchObject({ kind: 'CIPHERTEXT_INVALID', reason: expect.stringContaining('not a backup share') });
    expect(failed(otherId)).toMatchObject({
      kind: 'CIPHERTEXT_INVALID',
      reason: expect.stringContaining(`decrypts to the share of pair ${otherId.pairIds.ED25519}, not of pair ${otherId.pairIds.SECP256K1}`),
    });
    expect(failed(half)).toMatchObject({ kind: 'INCOMPLETE_BACKUP', reason: expect.stringContaining('ED25519') });

    const text = JSON.stringify(outcomes);
    for (const user of users) for (const secret of secretsOf(user.client)) expect(text).not.toContain(secret);
    expect(simulator.calls.recover ?? 0).toBe(0);
  });

  it('retries a user whose Vault or Portal is down (retryable failure), and calls it inconclusive only from the configured attempt', async () => {
    const user = await backedUp('outage');
    await vaultProxy.setMode('refuse');
    try {
      const failure = await failureOf(check(drillDeps(), [user.userId]));
      expect(failure).toMatchObject({ type: 'VaultUnavailableError', nonRetryable: false });
      const late = await check(drillDeps(), [user.userId], 3);
      expect(late).toEqual([{ userId: user.userId, outcome: 'inconclusive', reason: expect.stringContaining('VaultUnavailableError') }]);
    } finally {
      await vaultProxy.setMode('pass');
    }
    simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, userId: user.userId });
    try {
      expect(await failureOf(check(drillDeps(), [user.userId]))).toMatchObject({ type: 'PortalUnavailableError', nonRetryable: false });
    } finally {
      simulator.faults.clear();
    }
    expect(await check(drillDeps(), [user.userId])).toEqual([{ userId: user.userId, outcome: 'passed' }]);
  });

  it('marks permanent errors about one user as CHECK_FAILED, and stops on one about the worker (Vault refuses its token)', async () => {
    const revoked = await backedUp('revoked');
    revoked.client.apiKeyRevoked = true;
    const outcomes = await check(drillDeps(), [revoked.userId, 'not-a-customer']);
    expect(outcomes).toEqual([
      { userId: revoked.userId, outcome: 'failed', kind: 'CHECK_FAILED', reason: expect.stringContaining('PortalAuthError') },
      { userId: 'not-a-customer', outcome: 'failed', kind: 'CHECK_FAILED', reason: expect.stringContaining('UnknownUserError') },
    ]);
    expect(JSON.stringify(outcomes)).not.toContain(revoked.client.apiKey);
    revoked.client.apiKeyRevoked = false;

    const failure = await failureOf(check(drillDeps({ transit: transitAt(inject('vaultAddr'), 'not-a-vault-token') }), [revoked.userId]));
    expect(failure).toMatchObject({ type: 'VaultPermissionError', nonRetryable: true });
  });

  it('Self-Managed: each custodian share must be held, decrypt in its client-and-pair context, and be what Portal delivered', async () => {
    /** custodian_shares as the webhook writes them (the database itself is exercised end to end). */
    const held = new Map<string, { pairId: string; encryptedShare: string; shareSha256: string }[]>();
    const custodianShares = { getByPair: async (clientId: string, pairId: string) => held.get(`${clientId}/${pairId}`) ?? [] };
    const hold = async (clientId: string, pairId: string, share: string, context = custodianShareContext(clientId, pairId)) => {
      const [encryptedShare] = await transit.encryptBatch([{ plaintext: Buffer.from(share), context }]);
      held.set(`${clientId}/${pairId}`, [{ pairId, encryptedShare: encryptedShare!, shareSha256: sha256Hex(share) }]);
    };
    const users = await Promise.all(['held', 'missing', 'moved', 'altered'].map((prefix) => backedUp(`custodian-${prefix}`)));
    for (const user of users) {
      for (const curve of CURVES) await hold(user.client.clientId, user.pairIds[curve], pair(user.client, user.pairIds[curve]).custodianShare!);
    }
    const [ok, missing, moved, altered] = users as [(typeof users)[number], (typeof users)[number], (typeof users)[number], (typeof users)[number]];
    held.delete(`${missing.client.clientId}/${missing.pairIds.ED25519}`);
    await hold(moved.client.clientId, moved.pairIds.SECP256K1, pair(moved.client, moved.pairIds.SECP256K1).custodianShare!, custodianShareContext(moved.client.clientId, moved.pairIds.ED25519));
    await hold(altered.client.clientId, altered.pairIds.ED25519, '{"custodianShare":"not what Portal sent"}');
    held.get(`${altered.client.clientId}/${altered.pairIds.ED25519}`)![0]!.shareSha256 = sha256Hex(pair(altered.client, altered.pairIds.ED25519).custodianShare!);

    const outcomes = await check(drillDeps({ selfManaged: true, custodianShares }), users.map((user) => user.userId));
    expect(outcomes).toEqual([
      { userId: ok.userId, outcome: 'passed' },
      {
        userId: missing.userId,
        outcome: 'failed',
        kind: 'CUSTODIAN_SHARE_MISSING',
        reason: `ED25519 pair ${missing.pairIds.ED25519}: no custodian share is held for client ${missing.client.clientId}`,
      },
      { userId: moved.userId, outcome: 'failed', kind: 'CUSTODIAN_SHARE_INVALID', reason: expect.stringContaining(`SECP256K1 pair ${moved.pairIds.SECP256K1}: the custodian share held for client ${moved.client.clientId} does not decrypt`) },
      { userId: altered.userId, outcome: 'failed', kind: 'CUSTODIAN_SHARE_INVALID', reason: expect.stringContaining('other than what Portal delivered (SHA-256 differs)') },
    ]);

    const misconfigured = await failureOf(check(drillDeps({ selfManaged: true }), [ok.userId]));
    expect(misconfigured).toMatchObject({ type: 'CustodianShareMissingError', nonRetryable: true, message: expect.stringContaining('DATABASE_URL') });
  });
});

describe('restore drill with copies in several stores (CIPHERTEXT_STORES)', () => {
  /** A second store in memory ("mirror"), filled with Portal's copy of each pair unless told otherwise. */
  function mirrorOf(...users: { client: SimClient; pairIds: BackupPairIds }[]) {
    const held = new Map<string, string>();
    for (const user of users) for (const curve of CURVES) held.set(user.pairIds[curve], pair(user.client, user.pairIds[curve]).clientCipherText!);
    const store: CiphertextStore = {
      kind: 'mirror',
      put: () => Promise.reject(new Error('the drill never writes')),
      get: async (_context, pairId) => {
        const ciphertext = held.get(pairId);
        if (ciphertext === undefined) throw new CiphertextNotFoundError(`the mirror has no ciphertext for ${pairId}`);
        return ciphertext;
      },
    };
    return { store, held };
  }

  it('names a missing or diverging copy by its store while another copy restores; no copy at all stays CIPHERTEXT_MISSING', async () => {
    const sound = await backedUp('copies-sound');
    const lostCopy = await backedUp('copies-lost');
    const divergingCopy = await backedUp('copies-diverging');
    const primaryAltered = await backedUp('copies-primary-altered');
    const nowhere = await backedUp('copies-nowhere');
    const mirror = mirrorOf(sound, lostCopy, divergingCopy, primaryAltered, nowhere);
    mirror.held.delete(lostCopy.pairIds.ED25519);
    mirror.held.set(divergingCopy.pairIds.SECP256K1, tampered(mirror.held.get(divergingCopy.pairIds.SECP256K1)!));
    const altered = pair(primaryAltered.client, primaryAltered.pairIds.SECP256K1);
    altered.clientCipherText = tampered(altered.clientCipherText!);
    mirror.held.delete(nowhere.pairIds.SECP256K1);
    delete pair(nowhere.client, nowhere.pairIds.SECP256K1).clientCipherText;
    const portalStore = new PortalCiphertextStore(portal, credentials());

    const outcomes = await check(drillDeps({ store: portalStore, copies: [portalStore, mirror.store] }), [sound, lostCopy, divergingCopy, primaryAltered, nowhere].map((user) => user.userId));

    expect(outcomes).toEqual([
      { userId: sound.userId, outcome: 'passed' },
      { userId: lostCopy.userId, outcome: 'failed', kind: 'COPY_MISSING', reason: expect.stringContaining('the mirror copy is missing') },
      { userId: divergingCopy.userId, outcome: 'failed', kind: 'COPY_DIVERGES', reason: expect.stringContaining(`the mirror copy does not restore: SECP256K1 pair ${divergingCopy.pairIds.SECP256K1}`) },
      { userId: primaryAltered.userId, outcome: 'failed', kind: 'COPY_DIVERGES', reason: expect.stringContaining('the portal copy does not restore') },
      { userId: nowhere.userId, outcome: 'failed', kind: 'CIPHERTEXT_MISSING', reason: expect.stringContaining('in any of the 2 stores that keep copies') },
    ]);
  });
});
