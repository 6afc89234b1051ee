import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultRuleInput, RouteName } from '../../simulator/fault-rules';
import { createBackupTestEnv, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  env = await createBackupTestEnv({ portalTimeoutMs: 2_000 });
  await env.startWorker();
});
afterAll(() => env?.close());

function pairsOf(userId: string) {
  return env.simulator.state.user(userId)!.wallets.flatMap((wallet) => wallet.backupSharePairs);
}

/** Every pair the run made is completed, stored and marked exactly once; step 1 ran once. */
function expectCleanCompletion(userId: string) {
  const pairs = pairsOf(userId);
  expect(pairs).toHaveLength(2);
  for (const pair of pairs) {
    expect(pair.status).toBe('completed');
    expect(pair.clientCipherText).toBeTruthy();
    expect(pair.markCount).toBe(1);
  }
  expect(env.simulator.state.user(userId)!.markEvents).toHaveLength(1);
}

/** Seeds a user, arms `fault` for that user alone, runs one backup to its end. */
async function backupUnder(prefix: string, fault: Omit<FaultRuleInput, 'userId'>) {
  const userId = env.seedUser(prefix);
  env.simulator.faults.add({ ...fault, userId });
  await env.backups.startBackupWorkflow(userId);
  const result = await env.backups.waitForBackup(userId);
  expect(result.status).toBe('COMPLETED');
  return { userId, result };
}

describe('transient faults at every step are retried until the backup completes', () => {
  const routes: RouteName[] = ['credentials', 'backup', 'storeCipherText', 'getCipherText', 'markPairs'];

  for (const route of routes) {
    it(`two 503s on ${route}`, async () => {
      const { userId } = await backupUnder(route, { route, kind: 'status', status: 503, count: 2 });
      expect(env.simulator.faults.log.filter((f) => f.userId === userId)).toHaveLength(2);
      expectCleanCompletion(userId);
    });
  }

  it('an HTML 502 page from a proxy in front of Portal, then success', async () => {
    const { userId } = await backupUnder('html', { route: 'markPairs', kind: 'html-error', status: 502, count: 1 });
    expectCleanCompletion(userId);
  });

  it('429 with Retry-After: the next attempt waits at least that long', async () => {
    const { userId } = await backupUnder('ratelimited', { route: 'markPairs', kind: 'rate-limit', retryAfterSeconds: 3, count: 1 });
    expectCleanCompletion(userId);
    const limitedAt = env.simulator.faults.log.find((f) => f.userId === userId)!.at;
    const markedAt = Date.parse(env.simulator.state.user(userId)!.markEvents[0]!.at);
    // The default first retry interval is 1 s; Retry-After asked for 3 s.
    expect(markedAt - limitedAt).toBeGreaterThanOrEqual(2_900);
  });

  it('429 without Retry-After falls back to the retry policy', async () => {
    const { userId } = await backupUnder('ratelimited-bare', { route: 'backup', kind: 'rate-limit', retryAfterSeconds: null, count: 2 });
    expectCleanCompletion(userId);
  });

  it('a Portal call that hangs past the client timeout is retried', async () => {
    const { userId } = await backupUnder('hang', { route: 'storeCipherText', kind: 'hang', count: 1 });
    expectCleanCompletion(userId);
  });

  it('a truncated JSON body at step 1 is retried, and the pairs it made are reported as orphans', async () => {
    const { userId, result } = await backupUnder('malformed', { route: 'backup', kind: 'malformed', count: 1 });
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(4);
    const orphans = pairs.filter((pair) => !Object.values(result.pairIds).includes(pair.id));
    expect(result.orphanedPairIds.sort()).toEqual(orphans.map((pair) => pair.id).sort());
    for (const orphan of orphans) {
      expect(orphan.status).toBe('incomplete');
      expect(orphan.clientCipherText).toBeUndefined();
    }
  });

  it('a lost response at step 1 (committed at Portal, connection dropped): completes and names the orphaned pairs', async () => {
    const { userId, result } = await backupUnder('lost', { route: 'backup', kind: 'lost-response', count: 1 });
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(4);
    const used = new Set(Object.values(result.pairIds));
    const orphans = pairs.filter((pair) => !used.has(pair.id));
    expect(orphans).toHaveLength(2);
    expect(result.orphanedPairIds.sort()).toEqual(orphans.map((pair) => pair.id).sort());
    for (const pair of pairs.filter((p) => used.has(p.id))) {
      expect(pair.status).toBe('completed');
      expect(pair.markCount).toBe(1);
    }
    for (const orphan of orphans) expect(orphan.status).toBe('incomplete');
  });

  it('a lost response at step 4 re-marks the same pairs; nothing else repeats', async () => {
    const { userId, result } = await backupUnder('lost-mark', { route: 'markPairs', kind: 'lost-response', count: 1 });
    const pairs = pairsOf(userId);
    expect(pairs).toHaveLength(2);
    const events = env.simulator.state.user(userId)!.markEvents;
    expect(events).toHaveLength(2);
    for (const event of events) expect(event.pairIds).toEqual([result.pairIds.SECP256K1, result.pairIds.ED25519]);
  });
});
