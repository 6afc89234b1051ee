import { describe, expect, it } from 'vitest';
import { CachedCredentialsSource } from '../../adapters/credentials/cached-credentials-source';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';

/** A source that counts loads; the clock is the test's. */
function setup(ttlMs = 1_000) {
  let now = 0;
  const loads: string[] = [];
  const source: CredentialsSource = { load: async (userId) => (loads.push(userId), { clientApiKey: `key-${userId}`, generateResponse: '{}' }) };
  const cache = new CachedCredentialsSource(source, ttlMs, 1_000, () => now);
  return { cache, loads, advance: (ms: number) => (now += ms) };
}

describe('CachedCredentialsSource', () => {
  it('answers a user from memory within the time to live, and asks again after it', async () => {
    const { cache, loads, advance } = setup();
    await cache.load('u1');
    advance(999);
    await cache.load('u1');
    expect(loads).toEqual(['u1']);
    advance(1);
    await cache.load('u1');
    expect(loads).toEqual(['u1', 'u1']);
  });

  it('drops every expired user, not only the one loaded again: no API key outlives its time to live', async () => {
    const { cache, advance } = setup();
    for (const userId of ['u1', 'u2', 'u3']) await cache.load(userId);
    advance(500);
    await cache.load('u4');
    expect(cache.size).toBe(4);
    advance(500);
    // u1-u3 expired; a purge (the timer's, or any load's) drops them although nobody asks for them.
    cache.purgeExpired();
    expect(cache.size).toBe(1);
    advance(500);
    await cache.load('u5');
    expect(cache.size).toBe(1);
  });
});
