/**
 * The shared Portal rate limit (adapters/portal/portal-rate-limiter.ts) on the real PostgreSQL of the
 * global setup: two pools stand for two worker processes.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fixedWindowFor, PORTAL_RATE_LIMIT_TABLE, SharedPortalRateLimiter, WINDOW_SLACK_MS, type PortalApi } from '../../adapters/portal/portal-rate-limiter';
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

describe('fixedWindowFor', () => {
  it('picks a window no sliding minute can overfill, even with clocks and sends off by the slack, letting through most of the limit', () => {
    expect(fixedWindowFor(200)).toEqual({ points: 14, seconds: 5 });
    expect(fixedWindowFor(50)).toEqual({ points: 2, seconds: 3 });
    const slack = WINDOW_SLACK_MS / 1000;
    for (let limit = 3; limit <= 2_000; limit += 1) {
      const { points, seconds } = fixedWindowFor(limit);
      // Windows shortened by the slack, and requests landing up to the slack late: a minute meets at most this many.
      const windows = Math.ceil((60 + slack) / (seconds - slack)) + 1;
      expect(points * windows, `limit ${limit}`).toBeLessThanOrEqual(limit);
      if (limit >= 20) expect(points * (60 / seconds), `limit ${limit}`).toBeGreaterThanOrEqual(limit * (limit >= 50 ? 0.72 : 0.68));
    }
    expect(() => fixedWindowFor(2)).toThrow(RangeError);
  });
});

describe('SharedPortalRateLimiter', () => {
  it('two processes together never take more than the window allows, and every request gets its slot', async () => {
    const scope = `test-${randomBytes(4).toString('hex')}`;
    const limits = { enclavePerMinute: 600, clientPerMinute: 600 };
    // 600 a minute: 26 per 3 s window (26 × 23 = 598 ≤ 600 in any sliding minute, with the slack).
    const { points, seconds } = fixedWindowFor(limits.clientPerMinute);
    expect({ points, seconds }).toEqual({ points: 26, seconds: 3 });
    const [a, b] = pools.map((pool) => new SharedPortalRateLimiter(pool, limits, scope));
    const granted: number[] = [];
    const perBurst = Math.ceil((2 * points + 5) / 3);
    const requests = 3 * perBurst;
    // Every window opens when a request is counted, so the first opens no earlier than now.
    const askedFrom = Date.now();
    // Three bursts a little over a second apart, alternating processes: later requests must count
    // in the same windows as the first ones (regression: each deadline second once had its own).
    const bursts = [0, 1_100, 2_200].map((delay, burst) =>
      new Promise((resolve) => setTimeout(resolve, delay)).then(() =>
        Promise.all(
          Array.from({ length: perBurst }, (_, i) => ((burst + i) % 2 === 0 ? a! : b!).acquire('client').then(() => granted.push(Date.now()))),
        ),
      ),
    );
    await Promise.all(bursts);
    expect(granted).toHaveLength(requests);
    granted.sort((x, y) => x - y);
    // What the limiter promises, wherever in a window the test starts and however slow the answers:
    // a window holds at most `points`, and a window opens only once the one before has ended, so
    // the grant after the j-th full window comes no earlier than j windows after the first request.
    // (Answers only arrive later than their slot, never earlier, so late answers cannot break it.)
    for (let j = 1; j * points < requests; j += 1) {
      expect(granted[j * points]! - askedFrom, `grant ${j * points + 1} of ${requests}`).toBeGreaterThanOrEqual(j * seconds * 1_000);
    }
    // The Enclave limit is counted apart: its row holds the one request, the client row none of it.
    await a!.acquire('enclave');
    const rows = await pools[0]!.query<{ key: string; points: number }>(
      `SELECT key, points FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key LIKE $1 ORDER BY key`,
      [`${scope}-%`],
    );
    expect(rows.rows.find((row) => row.key.startsWith(`${scope}-enclave`))?.points).toBe(1);
    expect(rows.rows.find((row) => row.key.startsWith(`${scope}-client`))?.points).toBeLessThanOrEqual(points);
  });

  it('while interactive requests are about, a batch request never takes the slots kept for them: an interactive request of another process gets one at once, and the window holds no more than its points', async () => {
    const scope = `reserve-${randomBytes(4).toString('hex')}`;
    // 35 a minute: 5 per 12 s window; a reserve of 40 % keeps 2 of them from batch requests.
    expect(fixedWindowFor(35)).toEqual({ points: 5, seconds: 12 });
    const limits = { enclavePerMinute: 35, clientPerMinute: 35 };
    const [batchProcess, interactiveProcess] = pools.map((pool) => new SharedPortalRateLimiter(pool, limits, scope, { interactiveReserveShare: 0.4 }));
    const order: string[] = [];
    // Interactive demand: one request, which opens the window.
    await interactiveProcess!.acquire('client', undefined, 'interactive').then(() => void order.push('interactive-first'));
    const stop = new AbortController();
    const batch = Array.from({ length: 4 }, (_, i) =>
      batchProcess!.acquire('client', stop.signal, 'batch').then(() => void order.push(`batch-${i}`), () => undefined),
    );
    // The first two fill the batch's share of the window (3 of 5, with the interactive one); the others wait.
    await Promise.all(batch.slice(0, 2));
    await Promise.all([0, 1].map((i) => interactiveProcess!.acquire('client', undefined, 'interactive').then(() => void order.push(`interactive-${i}`))));
    // The reserve is taken: the window is full, for either class.
    const full = await pools[0]!.query<{ points: number }>(`SELECT points FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1`, [`${scope}-client:requests`]);
    expect(full.rows[0]!.points).toBe(5);
    stop.abort(new Error('test over'));
    await Promise.all(batch);
    expect(order).toEqual(['interactive-first', 'batch-0', 'batch-1', 'interactive-0', 'interactive-1']);
    const after = await pools[0]!.query<{ points: number }>(`SELECT points FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1`, [`${scope}-client:requests`]);
    expect(after.rows[0]!.points).toBe(5);
  });

  it('with no interactive demand the batch has the whole window', async () => {
    const scope = `no-demand-${randomBytes(4).toString('hex')}`;
    const limiter = new SharedPortalRateLimiter(pools[1]!, { enclavePerMinute: 35, clientPerMinute: 35 }, scope, { interactiveReserveShare: 0.4 });
    const stop = new AbortController();
    const granted: number[] = [];
    const batch = Array.from({ length: 6 }, (_, i) => limiter.acquire('client', stop.signal, 'batch').then(() => void granted.push(i), () => undefined));
    await Promise.all(batch.slice(0, 5));
    stop.abort(new Error('test over'));
    await Promise.all(batch);
    expect(granted).toEqual([0, 1, 2, 3, 4]);
  });

  it('interactive requests waiting in a process are granted before the batch requests that waited longer, and the batch gets what they leave', async () => {
    const scope = `precedence-${randomBytes(4).toString('hex')}`;
    // 60 a minute: 5 per 6 s window; no reserve here, so only the order is at work.
    expect(fixedWindowFor(60)).toEqual({ points: 5, seconds: 6 });
    const limiter = new SharedPortalRateLimiter(pools[0]!, { enclavePerMinute: 60, clientPerMinute: 60 }, scope, { interactiveReserveShare: 0 });
    const order: string[] = [];
    const take = (name: string, demand: 'interactive' | 'batch', signal?: AbortSignal) =>
      limiter.acquire('enclave', signal, demand).then(() => void order.push(name), () => undefined);
    // Fill the window.
    await Promise.all(Array.from({ length: 5 }, (_, i) => take(`first-${i}`, 'batch')));
    // Four batch requests queue first, then three interactive ones: the next window's five slots go
    // to the three interactive requests and then to the two batch requests that waited longest.
    const stop = new AbortController();
    const waiting = [
      ...Array.from({ length: 4 }, (_, i) => take(`batch-${i}`, 'batch', stop.signal)),
      ...Array.from({ length: 3 }, (_, i) => take(`interactive-${i}`, 'interactive', stop.signal)),
    ];
    await Promise.all(waiting.slice(0, 2).concat(waiting.slice(4)));
    stop.abort(new Error('test over'));
    await Promise.all(waiting);
    expect(order.slice(5)).toEqual(['interactive-0', 'interactive-1', 'interactive-2', 'batch-0', 'batch-1']);
    const row = await pools[0]!.query<{ points: number }>(`SELECT points FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1`, [`${scope}-enclave:requests`]);
    expect(row.rows[0]!.points).toBe(5);
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
    // 3 a minute: one slot per 60 s window, so the second request must wait.
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
