/**
 * Paces a loop at `perMinute` items a minute: `await next()` before each item waits until its slot
 * (one every 60 000 / perMinute ms, counted from the first; a slow item does not earn a burst).
 */
export function pacer(perMinute: number, clock: { now?: () => number; sleep?: (ms: number) => Promise<void> } = {}): () => Promise<void> {
  const now = clock.now ?? Date.now;
  const sleep = clock.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const intervalMs = 60_000 / perMinute;
  let nextAt = now();
  return async () => {
    const wait = nextAt - now();
    if (wait > 0) await sleep(wait);
    nextAt = Math.max(nextAt, now()) + intervalMs;
  };
}
