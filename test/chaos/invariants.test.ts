import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import type { VaultTransit } from '../../adapters/vault/vault-transit';
import { checkCustodianShares, checkUser, ViolationLog, type BackupOutcome, type BackupRun, type HeldCustodianShare } from '../../chaos/invariants';
import { custodianShareForms, secretsOf } from '../../chaos/secret-scan';
import type { BackupPairIds } from '../../domain/backup-types';
import type { WebhookCallRecord } from '../../simulator/custodian-webhook';
import { PortalState, type SimBackupPair, type SimClient } from '../../simulator/portal-state';

/**
 * The campaign's custodian-share checks must catch what they are there to catch: a share
 * acknowledged to Portal but not held, held under the wrong context or with other content, and a
 * marked pair whose custodian half is missing. A stand-in Transit: the "ciphertext" carries its
 * context and plaintext, and decrypts only in that context.
 */
const transit = {
  async decryptBatch(items: { ciphertext: string; context: string }[]) {
    return items.map(({ ciphertext, context }) => {
      const [prefix, version, boundContext, plain] = ciphertext.split(':');
      if (prefix !== 'vault' || version !== 'v1' || boundContext !== context) throw new Error('decrypt failed');
      return Buffer.from(plain!, 'base64');
    });
  },
} as unknown as VaultTransit;

const encrypt = (clientId: string, pairId: string, share: string) =>
  `vault:v1:${custodianShareContext(clientId, pairId)}:${Buffer.from(share, 'utf8').toString('base64')}`;
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function setUp() {
  const state = new PortalState();
  const client = state.seedUser('invariants-user');
  const response = state.createBackupPairs(client, { selfManaged: true });
  const pairs = Object.values(response).map(({ id }) => state.findPair(client, id)!);
  const row = (pair: SimBackupPair, share = pair.custodianShare!, pairId = pair.id): HeldCustodianShare => ({
    backupMethod: 'UNKNOWN',
    pairId: pair.id,
    encryptedShare: encrypt(client.clientId, pairId, share),
    shareSha256: sha256(share),
  });
  const delivery = (pair: SimBackupPair, outcome: 'ok' | 'failed'): WebhookCallRecord => ({
    at: new Date().toISOString(),
    call: 'backup',
    purpose: 'backup',
    userId: client.userId,
    clientId: client.clientId,
    pairId: pair.id,
    outcome,
    durationMs: 1,
  });
  return { client, pairs, row, delivery };
}

describe('checkCustodianShares', () => {
  it('passes when every acknowledged and every marked pair is held as Portal sent it', async () => {
    const { client, pairs, row, delivery } = setUp();
    for (const pair of pairs) pair.status = 'completed';
    const violations = new ViolationLog();
    const result = await checkCustodianShares(client, pairs.map((p) => delivery(p, 'ok')), pairs.map((p) => row(p)), transit, violations);
    expect(violations.details).toEqual([]);
    expect(result).toEqual({ acknowledged: pairs.length, held: pairs.length });
  });

  it('counts an acknowledged share with no row, and a marked pair without its custodian share', async () => {
    const { client, pairs, row, delivery } = setUp();
    pairs[0]!.status = 'completed';
    const violations = new ViolationLog();
    await checkCustodianShares(client, pairs.map((p) => delivery(p, 'ok')), [row(pairs[1]!)], transit, violations);
    expect(violations.counts['custodian-ack-not-held']).toBe(1);
    expect(violations.counts['marked-without-custodian-share']).toBe(1);
    expect(violations.details[0]!.detail).toContain('no row in custodian_shares');
  });

  it('does not count a failed delivery whose share is absent', async () => {
    const { client, pairs, delivery } = setUp();
    const violations = new ViolationLog();
    await checkCustodianShares(client, pairs.map((p) => delivery(p, 'failed')), [], transit, violations);
    expect(violations.total).toBe(0);
  });

  it('counts a row that decrypts to another share, or only in another pair’s context', async () => {
    const { client, pairs, row, delivery } = setUp();
    const [first, second] = pairs as [SimBackupPair, SimBackupPair];
    const violations = new ViolationLog();
    const held = [row(first, `${first.custodianShare!} `), row(second, second.custodianShare!, first.id)];
    await checkCustodianShares(client, [delivery(first, 'ok'), delivery(second, 'ok')], held, transit, violations);
    expect(violations.counts['custodian-ack-not-held']).toBe(2);
    expect(violations.details.map((d) => d.detail).join('\n')).toMatch(/something other than what Portal sent[\s\S]*does not decrypt/);
  });

  it('compares by digest when the simulator did not retain the share', async () => {
    const { client, pairs, row, delivery } = setUp();
    const pair = pairs[0]!;
    const held = [row(pair)];
    delete pair.custodianShare;
    const violations = new ViolationLog();
    await checkCustodianShares(client, [delivery(pair, 'ok')], held, transit, violations);
    expect(violations.total).toBe(0);
  });
});

describe('custodian shares count as secrets', () => {
  it('the string as sent, its base64 and its inner share material', () => {
    const { client, pairs } = setUp();
    const share = pairs[0]!.custodianShare!;
    const inner = (JSON.parse(share) as { custodianShare: string }).custodianShare;
    expect(custodianShareForms(share)).toEqual([share, Buffer.from(share).toString('base64'), inner]);
    expect(secretsOf(client)).toEqual(expect.arrayContaining([share, inner]));
  });
});

/**
 * The campaign judges what the service promises for one user's runs: no two overlap, and each
 * marked pair is marked while the run that created it is open. Runs one after the other (a start
 * that arrived after the first run closed) are counted, not a violation. Fixed times on one clock.
 */
describe('checkUser: runs of one user', () => {
  const T0 = Date.parse('2026-11-25T10:00:00.000Z');

  function setUpUser() {
    const state = new PortalState();
    const client = state.seedUser('runs-user');
    const mark = (ids: string[], at: number) => {
      for (const id of ids) state.findPair(client, id)!.status = 'completed';
      client.markEvents.push({ at: new Date(at).toISOString(), status: 'STORED_CLIENT_BACKUP_SHARE', pairIds: ids });
    };
    /** One completed run: step 1 made its pairs, step 3 stored them, step 4 marked them at `markedAt`. */
    const run = (runId: string, startedAt: number, closedAt: number | undefined, markedAt?: number): BackupRun => {
      const response = state.createBackupPairs(client);
      const pairIds = Object.fromEntries(Object.entries(response).map(([curve, { id }]) => [curve, id])) as BackupPairIds;
      for (const { id, share } of Object.values(response)) {
        state.findPair(client, id)!.clientCipherText = encryptBackup(client, id, share);
      }
      if (markedAt !== undefined) mark(Object.values(pairIds), markedAt);
      const base = { runId, startedAt, pairIds: Object.values(pairIds) };
      if (closedAt === undefined) return { ...base, status: 'RUNNING' };
      return {
        ...base,
        closedAt,
        status: 'COMPLETED',
        result: {
          userId: client.userId,
          status: 'COMPLETED',
          pairIds,
          orphanedPairIds: [],
          stepDurationsMs: {},
          startedAt: new Date(startedAt).toISOString(),
          completedAt: new Date(closedAt).toISOString(),
        },
      };
    };
    const outcomeOf = (runs: BackupRun[]): BackupOutcome => {
      const latest = runs.at(-1)!;
      return { userId: client.userId, status: latest.status, ...(latest.result ? { result: latest.result } : {}), revokedByCampaign: false, runs };
    };
    return { state, client, run, mark, outcomeOf };
  }

  const encryptBackup = (client: SimClient, pairId: string, share: string) =>
    `vault:v1:${transitContext(client.userId, pairId)}:${Buffer.from(JSON.stringify({ id: pairId, share }), 'utf8').toString('base64')}`;

  it('passes one run that marked its own pairs', async () => {
    const { client, run, outcomeOf } = setUpUser();
    const violations = new ViolationLog();
    const checked = await checkUser(client, outcomeOf([run('run-1', T0, T0 + 2_000, T0 + 1_500)]), transit, violations);
    expect(violations.details).toEqual([]);
    expect(checked).toEqual({ orphans: 0, runs: 1 });
  });

  it('counts two runs one after the other (the second start 36 ms after the first closed), and finds no violation', async () => {
    const { client, run, outcomeOf } = setUpUser();
    const runs = [run('run-1', T0, T0 + 2_000, T0 + 1_500), run('run-2', T0 + 2_036, T0 + 4_000, T0 + 3_500)];
    const violations = new ViolationLog();
    const checked = await checkUser(client, outcomeOf(runs), transit, violations);
    expect(violations.details).toEqual([]);
    expect(violations.total).toBe(0);
    expect(checked.runs).toBe(2);
  });

  it('counts two runs that overlap in time as a violation, and a run still open when another started', async () => {
    const { client, run, outcomeOf } = setUpUser();
    const violations = new ViolationLog();
    // Listed in any order: the checker sorts by start.
    await checkUser(client, outcomeOf([run('run-2', T0 + 2_000, T0 + 4_000, T0 + 3_500), run('run-1', T0, T0 + 3_000, T0 + 1_500)].reverse()), transit, violations);
    expect(violations.counts['overlapping-runs-per-user']).toBe(1);
    expect(violations.total).toBe(1);
    expect(violations.details[0]!.detail).toMatch(/run run-2 started .* before run run-1 .* closed/);

    const open = setUpUser();
    const stillOpen = new ViolationLog();
    const runs = [open.run('run-a', T0, undefined), open.run('run-b', T0 + 5_000, T0 + 6_000, T0 + 5_500)];
    await checkUser(open.client, open.outcomeOf(runs), transit, stillOpen);
    expect(stillOpen.counts['overlapping-runs-per-user']).toBe(1);
    expect(stillOpen.details.find((d) => d.invariant === 'overlapping-runs-per-user')!.detail).toContain('(still open)');
    // The earlier run never completed either: said as such, not hidden behind the latest one.
    expect(stillOpen.counts['backup-not-completed']).toBe(1);
  });

  it('counts a pair marked by a run that did not create it: a mark after its own run closed', async () => {
    const { client, run, mark, outcomeOf } = setUpUser();
    const first = run('run-1', T0, T0 + 2_000, T0 + 1_500);
    const second = run('run-2', T0 + 3_000, T0 + 5_000, T0 + 4_500);
    // The second run also marks one of the first run's pairs.
    mark([first.pairIds![0]!], T0 + 4_000);
    const violations = new ViolationLog();
    await checkUser(client, outcomeOf([first, second]), transit, violations);
    expect(violations.counts['pair-marked-by-another-run']).toBe(1);
    expect(violations.total).toBe(1);
    expect(violations.details[0]!.detail).toContain(`pair ${first.pairIds![0]!} marked at ${new Date(T0 + 4_000).toISOString()}, after run run-1`);
  });

  it('counts a marked pair that no run of the user created (an orphan of a lost step 1)', async () => {
    const { state, client, run, mark, outcomeOf } = setUpUser();
    const only = run('run-1', T0, T0 + 2_000, T0 + 1_500);
    const orphan = Object.values(state.createBackupPairs(client))[0]!;
    state.findPair(client, orphan.id)!.clientCipherText = encryptBackup(client, orphan.id, orphan.share);
    mark([orphan.id], T0 + 1_600);
    const violations = new ViolationLog();
    await checkUser(client, outcomeOf([only]), transit, violations);
    expect(violations.counts['pair-marked-by-another-run']).toBe(1);
    expect(violations.details.find((d) => d.invariant === 'pair-marked-by-another-run')!.detail).toContain('no run of this user created it');
  });
});
