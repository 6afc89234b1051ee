import type { CredentialsSource, UserCredentials } from './credentials-source';

/**
 * Remembers each user's credentials for a few seconds, so one step that makes several calls for a
 * user (a store's puts and read-backs) asks the company's backend once. Short on purpose: a key the
 * backend rotates is picked up within `ttlMs`, and keys do not linger in memory.
 */
export class CachedCredentialsSource implements CredentialsSource {
  private readonly entries = new Map<string, { at: number; value: Promise<UserCredentials> }>();

  constructor(
    private readonly source: CredentialsSource,
    private readonly ttlMs: number,
    private readonly maxEntries = 1_000,
    private readonly now: () => number = Date.now,
  ) {
    // An idle worker must not keep the last users' API keys either: drop them once they expire.
    setInterval(() => this.purgeExpired(), ttlMs).unref();
  }

  /** How many users' credentials are held now. */
  get size(): number {
    return this.entries.size;
  }

  load(userId: string): Promise<UserCredentials> {
    this.purgeExpired();
    const now = this.now();
    const hit = this.entries.get(userId);
    if (hit) return hit.value;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    const value = this.source.load(userId);
    this.entries.set(userId, { at: now, value });
    // A failed load is not remembered: the next call asks again.
    value.catch(() => this.entries.delete(userId));
    return value;
  }

  /** Drops expired entries: the map keeps insertion order, which is load time, so they are at its front. */
  purgeExpired(): void {
    const now = this.now();
    for (const [userId, entry] of this.entries) {
      if (now - entry.at < this.ttlMs) return;
      this.entries.delete(userId);
    }
  }
}
