import { afterEach, describe, expect, it, vi } from 'vitest';
import { RateWindow } from '../../workflows/fleet-run';

/** The rate fleet runs report (batch, rotation): users done in the last minute, never a burst extrapolated. */
describe('RateWindow', () => {
  afterEach(() => vi.useRealTimers());
  const start = Date.parse('2026-12-05T00:00:00Z');

  it('a first chunk of 10 users one second in reads as 10 in the last minute (it read 600/min), with no ETA before a minute', () => {
    vi.useFakeTimers({ now: start + 1_000 });
    const window = new RateWindow();
    window.record(10);
    expect(window.report(new Date(start).toISOString(), 100, 10)).toEqual({ ratePerMinute: 10 });
  });

  it('counts only the last minute, and gives the ETA at that rate once a minute has passed', () => {
    vi.useFakeTimers({ now: start + 10_000 });
    const window = new RateWindow();
    window.record(10);
    vi.setSystemTime(start + 80_000);
    window.record(15);
    vi.setSystemTime(start + 90_000);
    // The 10 at 10 s are out of the window (80 s ago); 15 done in the last minute, 75 left: 5 minutes.
    expect(window.report(new Date(start).toISOString(), 100, 25)).toEqual({ ratePerMinute: 15, etaSeconds: 300 });
  });
});
