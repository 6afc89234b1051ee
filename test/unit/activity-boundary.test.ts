/** The activity boundary's retry timing and heartbeat pace (activities/activity-boundary.ts). */
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { heartbeatEveryMs, toApplicationFailure } from '../../activities/activity-boundary';
import { PortalAuthError, PortalRateLimitedError, PortalUnavailableError } from '../../domain/errors';
import { OUTAGE_AFTER_ATTEMPTS, OUTAGE_RETRY_INTERVAL_MS } from '../../workflows/step-timeouts';

describe('toApplicationFailure', () => {
  it('leaves the retry policy alone for a transient error, until the step has failed long enough to be an outage', () => {
    expect(toApplicationFailure(new PortalUnavailableError('503'), OUTAGE_AFTER_ATTEMPTS - 1).nextRetryDelay).toBeUndefined();
    expect(toApplicationFailure(new PortalUnavailableError('503'), OUTAGE_AFTER_ATTEMPTS).nextRetryDelay).toBe(OUTAGE_RETRY_INTERVAL_MS);
  });

  it('keeps Portal’s Retry-After over the outage pace, and never delays a permanent error', () => {
    expect(toApplicationFailure(new PortalRateLimitedError('429', { retryAfterMs: 3_000 }), 50).nextRetryDelay).toBe(3_000);
    const permanent = toApplicationFailure(new PortalAuthError('401'), 50);
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
