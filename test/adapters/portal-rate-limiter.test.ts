/**
 * The shared Portal rate limit (adapters/portal/portal-rate-limiter.ts) on the real PostgreSQL of the
 * global setup: two pools stand for two worker processes.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GRANT_TO_PORTAL_SLACK_MS, legacyFixedWindowFor, pacingFor, PORTAL_RATE_LIMIT_TABLE, SharedPortalRateLimiter, type PortalApi } from '../../adapters/portal/portal-rate-limiter';
import { PortalClient } from '../../adapters/portal/portal-client';
import { createDatabasePool } from '../../db/pool';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';

let pools: Pool[] = [];
let simulator: PortalSimulator | undefined;

beforeAll(() => {
  pools = [createDatabasePool(inject('databaseUrl')), createDatabasePool(inject('databaseUrl'))];
});
afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  await simulator?.close();
});

describe('pacingFor', () => {
  it('paces so that no sliding minute at Portal can overfill, even with each request a slack late, letting through most of the limit', () => {
    expect(pacingFor(1_200)).toMatchObject({ burst: 24, intervalUs: 51_915 });
    expect(pacingFor(50)).toMatchObject({ burst: 1, intervalUs: 1_270_834 });
    for (let limit = 2; limit <= 2_000; limit += 1) {
      const { burst, intervalUs, perMinute } = pacingFor(limit);
      // GCRA: n requests granted within t of each other satisfy n ≤ 1 + burst + t / interval; here t
      // is a minute plus the slack (every request Portal counts in one minute was granted within it).
      expect(1 + burst + ((60_000 + GRANT_TO_PORTAL_SLACK_MS) * 1_000) / intervalUs, `limit ${limit}`).toBeLessThanOrEqual(limit);
      if (limit >= 20) expect(perMinute, `limit ${limit}`).toBeGreaterThanOrEqual(limit * (limit >= 100 ? 0.95 : 0.9));
    }
    expect(() => pacingFor(1)).toThrow(RangeError);
    expect(() => pacingFor(10, { burst: 9 })).toThrow(RangeError);
    // The earlier builds' windows, which this build still counts in (rolling deploys).
    expect(legacyFixedWindowFor(200)).toEqual({ points: 14, seconds: 5 });
    expect(legacyFixedWindowFor(50)).toEqual({ points: 2, seconds: 3 });
  });
});

/** The pace row's theoretical arrival time, µs on the database's clock, less the database's now. */
async function paceAhead(scope: string, api: PortalApi): Promise<number> {
  const { rows } = await pools[0]!.query<{ ahead: string }>(
    `SELECT expire - (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS ahead FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1`,
    [`${scope}-${api}:pace`],
  );
  return Number(rows[0]!.ahead);
}

describe('SharedPortalRateLimiter', () => {
  it('two processes together never take a slot before the pace allows it, and every request gets its slot', async () => {
    const scope = `test-${randomBytes(4).toString('hex')}`;
    const limits = { enclavePerMinute: 600, clientPerMinute: 600 };
    // 600 a minute: 12 at once, then one per 103.9 ms.
    const { burst, intervalUs } = pacingFor(limits.clientPerMinute);
    expect({ burst, intervalUs }).toEqual({ burst: 12, intervalUs: 103_919 });
    const [a, b] = pools.map((pool) => new SharedPortalRateLimiter(pool, limits, scope));
    const granted: number[] = [];
    const perBurst = 14;
    const requests = 3 * perBurst;
    // The pace's row is new, so the first slot is taken no earlier than now.
    const askedFrom = Date.now();
    // Three bursts a little over a second apart, alternating processes.
    const bursts = [0, 1_100, 2_200].map((delay, round) =>
      new Promise((resolve) => setTimeout(resolve, delay)).then(() =>
        Promise.all(
          Array.from({ length: perBurst }, (_, i) => ((round + i) % 2 === 0 ? a! : b!).acquire('client').then(() => granted.push(Date.now()))),
        ),
      ),
    );
    await Promise.all(bursts);
    expect(granted).toHaveLength(requests);
    granted.sort((x, y) => x - y);
    // What the limiter promises, wherever the test starts and however slow the answers: the k-th
    // slot (from 0) is taken no earlier than (k − burst) intervals after the first. (Answers only
    // arrive later than their slot, never earlier, so late answers cannot break it.)
    for (let k = burst + 1; k < requests; k += 1) {
      expect(granted[k]! - askedFrom, `grant ${k + 1} of ${requests}`).toBeGreaterThanOrEqual(Math.floor(((k - burst) * intervalUs) / 1_000));
    }
    // The Enclave limit is paced apart: its row moved one interval for its one request.
    await a!.acquire('enclave');
    const enclaveAhead = await paceAhead(scope, 'enclave');
    expect(enclaveAhead).toBeLessThanOrEqual(pacingFor(limits.enclavePerMinute).intervalUs);
    expect(await paceAhead(scope, 'client')).not.toBe(enclaveAhead);
  });

  it('each request granted is also counted in the fixed-window row of the earlier builds, so that their workers hold back during a rolling deploy', async () => {
    const scope = `legacy-${randomBytes(4).toString('hex')}`;
    // 5 a minute with a burst of 2: three at once. The earlier builds' window at 5 a minute: 1 per 20 s.
    expect(legacyFixedWindowFor(5)).toEqual({ points: 1, seconds: 20 });
    const limiter = new SharedPortalRateLimiter(pools[0]!, { enclavePerMinute: 5, clientPerMinute: 5 }, scope, { burst: 2 });
    await Promise.all([0, 1, 2].map(() => limiter.acquire('client')));
    const { rows } = await pools[0]!.query<{ points: number }>(`SELECT points FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1`, [`${scope}-client:requests`]);
    // Three in one window whose earlier-build cap is one: a worker of that build takes nothing more in it.
    expect(rows[0]!.points).toBe(3);
  });

  /**
   * 6 a minute with a burst of 3: four at once, then one per 30.5 s; a reserve of 50 % keeps two of
   * the four from batch requests. The slots come back one per 30.5 s, so the test's own pace does
   * not matter unless one of its steps takes that long.
   */
  const SLOW = { enclavePerMinute: 6, clientPerMinute: 6 };
  const SLOW_OPTIONS = { interactiveReserveShare: 0.5, burst: 3 };

  it('while interactive requests are about, a batch request never takes the slots kept for them: an interactive request of another process gets one at once', async () => {
    const scope = `reserve-${randomBytes(4).toString('hex')}`;
    const [batchProcess, interactiveProcess] = pools.map((pool) => new SharedPortalRateLimiter(pool, SLOW, scope, SLOW_OPTIONS));
    const order: string[] = [];
    const stop = new AbortController();
    // Interactive demand: one request, which takes the first slot.
    await interactiveProcess!.acquire('client', undefined, 'interactive').then(() => void order.push('interactive-first'));
    const batch = Array.from({ length: 3 }, (_, i) =>
      batchProcess!.acquire('client', stop.signal, 'batch').then(() => void order.push(`batch-${i}`), () => undefined),
    );
    // The first fills the batch's share (two of four, with the interactive one); the others wait.
    await batch[0];
    await Promise.all([0, 1].map((i) => interactiveProcess!.acquire('client', undefined, 'interactive').then(() => void order.push(`interactive-${i}`))));
    // The reserve is taken: the burst is used up, for either class.
    const late = interactiveProcess!.acquire('client', stop.signal, 'interactive').then(() => void order.push('interactive-late'), () => undefined);
    // Four slots ahead of the database's clock, more than the three an interactive request may use.
    expect(await paceAhead(scope, 'client')).toBeGreaterThan(3 * pacingFor(6, { burst: 3 }).intervalUs);
    stop.abort(new Error('test over'));
    await Promise.all([...batch, late]);
    expect(order).toEqual(['interactive-first', 'batch-0', 'interactive-0', 'interactive-1']);
  });

  it('with no interactive demand the batch has the whole burst', async () => {
    const scope = `no-demand-${randomBytes(4).toString('hex')}`;
    const limiter = new SharedPortalRateLimiter(pools[1]!, SLOW, scope, SLOW_OPTIONS);
    const stop = new AbortController();
    const granted: number[] = [];
    const batch = Array.from({ length: 5 }, (_, i) => limiter.acquire('client', stop.signal, 'batch').then(() => void granted.push(i), () => undefined));
    await Promise.all(batch.slice(0, 4));
    stop.abort(new Error('test over'));
    await Promise.all(batch);
    expect(granted).toEqual([0, 1, 2, 3]);
  });

  it('interactive requests waiting in a process are granted before the batch requests that waited longer, and the batch gets what they leave', async () => {
    const scope = `precedence-${randomBytes(4).toString('hex')}`;
    // 120 a minute with a burst of 4: five at once, then one per 530 ms; no reserve here, so only the order is at work.
    const limiter = new SharedPortalRateLimiter(pools[0]!, { enclavePerMinute: 120, clientPerMinute: 120 }, scope, { interactiveReserveShare: 0, burst: 4 });
    const order: string[] = [];
    const take = (name: string, demand: 'interactive' | 'batch', signal?: AbortSignal) =>
      limiter.acquire('enclave', signal, demand).then(() => void order.push(name), () => undefined);
    // Use up the burst.
    await Promise.all(Array.from({ length: 5 }, (_, i) => take(`first-${i}`, 'batch')));
    // Four batch requests queue first, then three interactive ones: the next five slots go to the
    // three interactive requests and then to the two batch requests that waited longest.
    const stop = new AbortController();
    const waiting = [
      ...Array.from({ length: 4 }, (_, i) => take(`batch-${i}`, 'batch', stop.signal)),
      ...Array.from({ length: 3 }, (_, i) => take(`interactive-${i}`, 'interactive', stop.signal)),
    ];
    await Promise.all(waiting.slice(0, 2).concat(waiting.slice(4)));
    stop.abort(new Error('test over'));
    await Promise.all(waiting);
    expect(order.slice(5)).toEqual(['interactive-0', 'interactive-1', 'interactive-2', 'batch-0', 'batch-1']);
  });

  it('PortalClient asks for a slot in the class of the work it serves', async () => {
    simulator ??= await startPortalSimulator({ seed: 6 });
    const user = simulator.state.seedUser('rate-class');
    const taken: string[] = [];
    let demand: 'interactive' | 'batch' = 'interactive';
    const portal = new PortalClient(
      { enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 2_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 },
      undefined,
      { acquire: async (api, _signal, asked) => void taken.push(`${api}:${asked}`) },
      () => undefined,
      () => demand,
    );
    await portal.getClient(user.apiKey);
    demand = 'batch';
    await portal.getClient(user.apiKey);
    expect(taken).toEqual(['client:interactive', 'client:batch']);
  });

  it('fails closed with a typed, retryable error when the database cannot be reached: nothing is sent', async () => {
    const dead = createDatabasePool('postgres://nobody:secret-password@127.0.0.1:1/none', { connectionTimeoutMs: 500 });
    try {
      const limiter = new SharedPortalRateLimiter(dead, { enclavePerMinute: 50, clientPerMinute: 200 }, 'dead');
      simulator = await startPortalSimulator({ seed: 3 });
      const user = simulator.state.seedUser('rate-dead');
      const portal = new PortalClient(
        { enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 2_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 },
        undefined,
        limiter,
      );
      const before = simulator.calls.getClient ?? 0;
      const error = await portal.getClient(user.apiKey).then(() => undefined, (e: unknown) => e as Error & { retryable?: boolean });
      expect(error).toMatchObject({ name: 'DatabaseUnavailableError', retryable: true });
      expect(error!.message).not.toContain('secret-password');
      expect(simulator.calls.getClient ?? 0).toBe(before);
    } finally {
      await dead.end();
    }
  });

  it('a request still waiting for a slot when its activity is cancelled is dropped: nothing reaches Portal', async () => {
    simulator ??= await startPortalSimulator({ seed: 5 });
    const user = simulator.state.seedUser('rate-cancel');
    // 3 a minute: one at once, then one per 30.5 s, so the second request must wait.
    const limiter = new SharedPortalRateLimiter(pools[0]!, { enclavePerMinute: 3, clientPerMinute: 3 }, `cancel-${randomBytes(4).toString('hex')}`);
    const controller = new AbortController();
    const portal = new PortalClient(
      { enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 2_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 },
      undefined,
      limiter,
      () => controller.signal,
    );
    const before = simulator.calls.getClient ?? 0;
    await portal.getClient(user.apiKey);
    const waiting = portal.getClient(user.apiKey).then(() => 'sent', (error: unknown) => error);
    setTimeout(() => controller.abort(new Error('activity cancelled')), 200);
    expect(await waiting).toMatchObject({ message: 'activity cancelled' });
    expect((simulator.calls.getClient ?? 0) - before).toBe(1);
  });

  it('PortalClient takes a slot of the right limit for every request it sends', async () => {
    simulator ??= await startPortalSimulator({ seed: 4 });
    const user = simulator.state.seedUser('rate-count');
    const taken: PortalApi[] = [];
    const portal = new PortalClient(
      { enclaveUrl: simulator.url, apiUrl: simulator.url, timeoutMs: 2_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 },
      undefined,
      { acquire: async (api) => void taken.push(api) },
    );
    const shares = await portal.backup(user.apiKey, user.generateResponse);
    await portal.storeCipherText(user.apiKey, shares.SECP256K1.id, 'vault:v1:abc');
    await portal.getCipherText(user.apiKey, shares.SECP256K1.id);
    await portal.markBackupPairsStored(user.apiKey, [shares.SECP256K1.id, shares.ED25519.id]).catch(() => undefined);
    await portal.getClient(user.apiKey);
    expect(taken).toEqual(['enclave', 'client', 'client', 'client', 'client']);
  });
});
