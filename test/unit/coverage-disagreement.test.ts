import { describe, expect, it } from 'vitest';
import { disagreement } from '../../chaos/coverage-check';
import type { BackupOutcome, BackupRun } from '../../chaos/invariants';
import type { CoverageRow } from '../../client/coverage';

const pairs = (n: number) => ({ SECP256K1: `k-${n}`, ED25519: `e-${n}` });
const run = (startedAt: number, status: string, n?: number): BackupRun => ({
  runId: `run-${startedAt}`,
  startedAt,
  status,
  ...(n !== undefined ? { result: { pairIds: pairs(n) } as BackupRun['result'] } : {}),
});
const outcome = (status: string, runs: BackupRun[]): BackupOutcome => ({ userId: 'u-1', status, revokedByCampaign: false, runs });
const row = (over: Partial<CoverageRow>): CoverageRow => ({ userId: 'u-1', problems: [], ...over });
const stores = ['portal', 'postgres'];

describe("the campaign's coverage check (coverage-disagrees)", () => {
  const completedTwice = outcome('COMPLETED', [run(2, 'COMPLETED', 2), run(1, 'COMPLETED', 1)]);

  it('agrees when the report names the newest completed run’s pairs with a copy in every store', () => {
    expect(disagreement(row({ pairIds: pairs(2), stores }), completedTwice, stores)).toBeUndefined();
  });

  it('disagrees when the report names an older backup, misses a copy, or reports a problem', () => {
    expect(disagreement(row({ pairIds: pairs(1), stores }), completedTwice, stores)).toMatch(/not the newest completed run/);
    expect(disagreement(row({ pairIds: pairs(2), stores: ['portal'] }), completedTwice, stores)).toBe('the report finds no copy in postgres');
    expect(disagreement(row({ pairIds: pairs(2), stores, problems: ['STALE'] }), completedTwice, stores)).toMatch(/says STALE/);
    expect(disagreement(row({ problems: ['NO_BACKUP'] }), completedTwice, stores)).toMatch(/completed, but the report says NO_BACKUP/);
    expect(disagreement(undefined, completedTwice, stores)).toMatch(/no row/);
  });

  it('takes PARKED only from a user whose latest run is parked after an earlier one completed', () => {
    const parkedAgain = outcome('NEEDS_ATTENTION', [run(1, 'COMPLETED', 1), run(2, 'NEEDS_ATTENTION')]);
    expect(disagreement(row({ pairIds: pairs(1), stores, problems: ['PARKED'] }), parkedAgain, stores)).toBeUndefined();
    expect(disagreement(row({ pairIds: pairs(2), stores, problems: ['PARKED'] }), completedTwice, stores)).toMatch(/says PARKED/);
  });

  it('holds a user none of whose runs completed to not being covered', () => {
    const never = outcome('NEEDS_ATTENTION', [run(1, 'NEEDS_ATTENTION')]);
    expect(disagreement(row({ problems: ['NO_BACKUP', 'PARKED'] }), never, stores)).toBeUndefined();
    expect(disagreement(row({ pairIds: pairs(9), stores }), never, stores)).toMatch(/covered, but none/);
    expect(disagreement(row({ pairIds: pairs(9), stores }), undefined, stores)).toMatch(/covered, but none/);
  });
});
