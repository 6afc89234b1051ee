import { Context } from '@temporalio/activity';
import { redactSecrets } from '../../domain/redact';
import { drillVerdictClaims, type DrillUserOutcome } from '../../contracts/restore-drill-api';
import { currentRun } from '../backup/backup-receipts';
import type { CheckDrillUsersInput, DrillActivityDeps } from './drill-activity-types';
import { checkUser } from './drill-checks';

/**
 * Checks each user's newest completed backup as a restore would read it, and returns one outcome
 * per user (ids, kinds and reasons only). Reads Portal's client object, the store, the KMS and, in
 * Self-Managed mode, the custodian shares; never calls /v1/recover and changes nothing.
 */
export async function checkDrillUsers(deps: DrillActivityDeps, input: CheckDrillUsersInput): Promise<DrillUserOutcome[]> {
  const reportTransient = Context.current().info.attempt >= input.inconclusiveAfterAttempts;
  const outcomes: DrillUserOutcome[] = [];
  for (const userId of input.userIds) {
    const outcome = await checkUser(deps, userId, reportTransient);
    outcomes.push('reason' in outcome ? { ...outcome, reason: redactSecrets(outcome.reason) } : outcome);
  }
  // Each verdict under the worker's receipt: the drill counts no verdict completed from outside.
  const run = currentRun();
  for (const outcome of outcomes) outcome.receipt = deps.receipts.issue('DRILL_VERDICT', run, drillVerdictClaims(outcome));
  // Counted once the activity returns: an attempt that throws (and is retried) counts nothing.
  for (const outcome of outcomes) deps.drillMetrics?.user(outcome.outcome, outcome.outcome === 'failed' ? outcome.kind : 'none');
  Context.current().log.info('restore drill checked users', {
    users: outcomes.length,
    failed: outcomes.filter((outcome) => outcome.outcome === 'failed').map((outcome) => outcome.userId),
  });
  return outcomes;
}
