import type { NativeConnection } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { connectWhenReachable } from '../../worker/connect-when-reachable';

const transportError = () => Object.assign(new Error('tcp connect error: Connection refused'), { name: 'TransportError' });

describe('connectWhenReachable (a worker started while Temporal is down waits for it)', () => {
  it('waits out transport failures with growing backoff, saying where and why, then connects', async () => {
    const connection = {} as NativeConnection;
    const failures = 7;
    let tries = 0;
    const waits: number[] = [];
    const warnings: string[] = [];
    const connected = await connectWhenReachable(
      { address: '127.0.0.1:7233' },
      (message) => warnings.push(message),
      async (ms) => void waits.push(ms),
      async () => (++tries <= failures ? Promise.reject(transportError()) : connection),
    );
    expect(connected).toBe(connection);
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect(warnings[0]).toBe('Temporal at 127.0.0.1:7233 cannot be reached (tcp connect error: Connection refused); trying again in 1 s');
  });

  it('throws any other error at once (a TLS or option problem is not waited out)', async () => {
    const bad = new TypeError('invalid TLS configuration');
    let tries = 0;
    await expect(
      connectWhenReachable({ address: 'x:1' }, () => undefined, async () => undefined, async () => {
        tries += 1;
        throw bad;
      }),
    ).rejects.toBe(bad);
    expect(tries).toBe(1);
  });
});
