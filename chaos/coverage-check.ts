import { coverageBackend } from '../client/cli-coverage';
import { runCoverage, type CoverageProblem, type CoverageRow, type CoverageSummary } from '../client/coverage';
import type { BackupPairIds } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import type { BackupDriver } from './backup-driver';
import type { CampaignStack } from './campaign-stack';
import type { BackupOutcome, ViolationLog } from './invariants';

/** The report's figures of the check: the coverage summary, and how many users it disagreed on. */
export interface CoverageAccount {
  summary: CoverageSummary;
  /** Users whose coverage row says something the campaign's own account of their backups does not. */
  disagreements: number;
}

/** Nothing is stale within a campaign: every backup is younger than a day. */
const POLICY_AGE_MS = 24 * 3600 * 1000;

/**
 * Runs `backup coverage` — the same code and settings as the CLI (the workers' variables) — over
 * the campaign's users once every backup has ended, and holds each row against the campaign's own
 * account: a user whose backup runs completed must be covered, by the pairs of the newest
 * completed run, with a copy in every configured store; a user none of whose runs completed must
 * not be. Portal's faults are cleared first (the report would otherwise say UNCHECKED for users
 * it could not read, which is its job, but not what this check is about).
 */
export async function checkCoverage(stack: CampaignStack, userIds: readonly string[], driver: BackupDriver, violations: ViolationLog): Promise<CoverageAccount> {
  stack.simulator.faults.clear();
  const backend = coverageBackend(stack.workerEnv);
  const rows = new Map<string, CoverageRow>();
  try {
    const summary = await runCoverage(
      { ...backend.deps, temporal: stack.clients.client },
      onePage(userIds),
      { maxAgeMs: POLICY_AGE_MS, usersPerMinute: 1_000_000 },
      (row) => void rows.set(row.userId, row),
    );
    const stores = (stack.workerEnv.CIPHERTEXT_STORES ?? 'portal').split(',');
    let disagreements = 0;
    for (const userId of userIds) {
      const problem = disagreement(rows.get(userId), driver.outcomes.get(userId), stores);
      if (!problem) continue;
      disagreements += 1;
      violations.add('coverage-disagrees', problem, userId);
    }
    return { summary, disagreements };
  } finally {
    await backend.close();
  }
}

async function* onePage(userIds: readonly string[]): AsyncIterable<string[]> {
  yield [...userIds];
}

/** Why `row` does not match the campaign's account of the user (undefined when it does). */
export function disagreement(row: CoverageRow | undefined, outcome: BackupOutcome | undefined, stores: readonly string[]): string | undefined {
  if (!row) return 'the coverage report has no row for the user';
  const expected = newestCompletedRun(outcome);
  const has = (problem: CoverageProblem) => row.problems.includes(problem);
  if (!expected) {
    return row.problems.length === 0 ? 'covered, but none of the user’s backup runs completed' : undefined;
  }
  if (has('NO_BACKUP') || has('UNCHECKED')) return `a backup run completed, but the report says ${row.problems.join(', ')}${row.detail ? ` (${row.detail})` : ''}`;
  const differs = CURVES.filter((curve) => row.pairIds?.[curve] !== expected[curve]);
  if (differs.length > 0) return `the report's newest backup (${CURVES.map((c) => row.pairIds?.[c]).join(', ')}) is not the newest completed run's (${CURVES.map((c) => expected[c]).join(', ')})`;
  const missing = stores.filter((store) => !(row.stores ?? []).includes(store));
  if (missing.length > 0) return `the report finds no copy in ${missing.join(', ')}`;
  const unexpected = row.problems.filter((problem) => problem !== 'PARKED' || outcome?.status !== 'NEEDS_ATTENTION');
  return unexpected.length > 0 ? `the report says ${unexpected.join(', ')} of a user whose newest backup completed` : undefined;
}

/** The pairs of the user's newest completed run (by start), from the runs Temporal recorded. */
function newestCompletedRun(outcome: BackupOutcome | undefined): BackupPairIds | undefined {
  const completed = (outcome?.runs ?? []).filter((run) => run.status === 'COMPLETED' && run.result).sort((a, b) => a.startedAt - b.startedAt);
  return completed.at(-1)?.result?.pairIds;
}
