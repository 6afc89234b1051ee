/** The activity boundary's retry timing and heartbeat pace (activities/activity-boundary.ts). */
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { heartbeatEveryMs, msSinceProgress, toApplicationFailure } from '../../activities/activity-boundary';
import { PortalAuthError, PortalRateLimitedError, PortalUnavailableError } from '../../domain/errors';
import { OUTAGE_AFTER_NO_PROGRESS_MS, OUTAGE_RETRY_INTERVAL_MS, retryDelayAfterFailureMs, TRANSIENT_RETRY_MAX_MS } from '../../contracts/step-timeouts';

describe('toApplicationFailure', () => {
  it('paces a transient error by the time since the step last made progress: flaky retries soon, down (no progress for a while) once a minute', () => {
    const delayAfter = (sinceProgressMs: number) => toApplicationFailure(new PortalUnavailableError('503'), sinceProgressMs).nextRetryDelay;
    expect(delayAfter(0)).toBe(250);
    expect(delayAfter(6_000)).toBe(3_000);
    expect(delayAfter(OUTAGE_AFTER_NO_PROGRESS_MS - 1)).toBe(TRANSIENT_RETRY_MAX_MS);
    expect(delayAfter(OUTAGE_AFTER_NO_PROGRESS_MS)).toBe(OUTAGE_RETRY_INTERVAL_MS);
  });

  it('the pace never shortens as the time without progress grows', () => {
    const times = Array.from({ length: 200 }, (_, i) => i * 1_000);
    const delays = times.map(retryDelayAfterFailureMs);
    expect(delays.every((delay, i) => i === 0 || delay >= delays[i - 1]!)).toBe(true);
  });

  it('a step without a checkpoint counts from its first scheduling: a long run of failures is an outage whatever the attempt', async () => {
    const env = (scheduledTimestampMs: number) => new MockActivityEnvironment({ attempt: 30, scheduledTimestampMs });
    const since = (scheduledTimestampMs: number) => env(scheduledTimestampMs).run(async () => msSinceProgress(Context.current()));
    expect(await since(Date.now() + 60_000)).toBeLessThan(0);
    expect(await since(Date.now() - OUTAGE_AFTER_NO_PROGRESS_MS)).toBeGreaterThanOrEqual(OUTAGE_AFTER_NO_PROGRESS_MS);
    // A checkpoint's own progress time wins over the scheduling.
    expect(await env(1).run(async () => msSinceProgress(Context.current(), Date.now() + 60_000))).toBeLessThan(0);
  });

  it('keeps Portal’s Retry-After over the outage pace, and never delays a permanent error', () => {
    expect(toApplicationFailure(new PortalRateLimitedError('429', { retryAfterMs: 3_000 }), OUTAGE_AFTER_NO_PROGRESS_MS).nextRetryDelay).toBe(3_000);
    const permanent = toApplicationFailure(new PortalAuthError('401'), OUTAGE_AFTER_NO_PROGRESS_MS);
    expect(permanent.nonRetryable).toBe(true);
    expect(permanent.nextRetryDelay).toBeUndefined();
  });
});

describe('heartbeatEveryMs', () => {
  it('heartbeats at the base interval, or a quarter of a longer heartbeat timeout', async () => {
    const pace = (heartbeatTimeoutMs: number) =>
      new MockActivityEnvironment({ heartbeatTimeoutMs }).run(async () => heartbeatEveryMs(Context.current(), 2_000));
    expect(await pace(8_000)).toBe(2_000);
    expect(await pace(30_000)).toBe(7_500);
  });
});
