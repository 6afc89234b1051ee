/**
 * Portal's documented limits are requests per minute; whether per key or per IP is not
 * documented, so the simulator applies them to everything it receives (one IP here): the
 * stricter reading. A sliding one-minute window.
 */
export class SlidingWindowLimiter {
  private readonly times: number[] = [];
  private head = 0;

  constructor(readonly perMinute: number) {}

  /** Takes a slot, or returns the seconds until one frees up. */
  take(now: number): { ok: true } | { ok: false; retryAfterSeconds: number } {
    while (this.head < this.times.length && this.times[this.head]! <= now - 60_000) this.head += 1;
    if (this.head > 4096) {
      this.times.splice(0, this.head);
      this.head = 0;
    }
    if (this.times.length - this.head < this.perMinute) {
      this.times.push(now);
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((this.times[this.head]! + 60_000 - now) / 1000)) };
  }
}
