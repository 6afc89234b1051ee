import { describe, expect, it } from 'vitest';
import { formatDuration, progressLine, renderReadable } from '../../client/cli-output';

describe('readable CLI output', () => {
  it('renders nested results as indented key: value lines and lists as bullets', () => {
    const text = renderReadable({
      userId: 'u1',
      status: 'COMPLETED',
      pairIds: { SECP256K1: 'p1', ED25519: 'p2' },
      orphanedPairIds: [],
      problems: [{ userId: 'u2', reason: 'parked at MARK' }],
    });
    expect(text).toBe(
      ['userId: u1', 'status: COMPLETED', 'pairIds:', '  SECP256K1: p1', '  ED25519: p2', 'orphanedPairIds: (none)', 'problems:', '  - userId: u2', '    reason: parked at MARK'].join('\n'),
    );
  });

  it('draws a batch progress line with a bar, counts, rate and ETA', () => {
    const line = progressLine({
      status: 'RUNNING',
      total: 200,
      counts: { started: 120, completed: 90, failed: 5, parked: 3, skipped: 2, joined: 0 },
      inFlight: 20,
      ratePerMinute: 31.5,
      etaSeconds: 190,
    }, 10);
    expect(line).toBe('[#####-----] 50% 100/200 · completed 90, failed 5, parked 3, skipped 2 · in flight 20 · 31.5/min · ETA 3m10s · RUNNING');
    expect(progressLine({ status: 'RUNNING', counts: { started: 3, completed: 3, failed: 0, parked: 0, skipped: 0, joined: 0 }, inFlight: 0, ratePerMinute: 0 }, 4)).toMatch(
      /^\[\?\?\?\?\] 3 done/,
    );
    expect(formatDuration(7_260)).toBe('2h01m');
  });
});
