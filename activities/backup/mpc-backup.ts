import { Context } from '@temporalio/activity';
import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import type { ActivityDeps, MpcBackupInput, MpcBackupResult } from '../backup-activity-types';
import { orphanedPairs } from './orphaned-pairs';
import { requireOwnWorkflowId } from './backup-receipts';
import { backupWorkflowId } from '../../domain/user-id';

/** Step 1: ask Portal for new backup share pairs. Not idempotent at Portal. */
export async function mpcBackup(deps: ActivityDeps, { userId }: MpcBackupInput): Promise<MpcBackupResult> {
  const info = Context.current().info;
  requireOwnWorkflowId(backupWorkflowId(userId), userId);
  await deps.vaultAccess?.assertUsable();
  await deps.runGuard?.assertNoRecoveryRunning(userId, info.workflowExecution);
  const credentials = await deps.credentials.load(userId);
  await deps.modeCheck.verify(credentials.clientApiKey);
  const shares = await deps.portal.backup(credentials.clientApiKey, credentials.generateResponse);
  const pairIds = Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as BackupPairIds;
  const result: MpcBackupResult = {
    sealedShares: deps.sealer.seal(userId, shares),
    pairIds,
    orphanedPairIds: [],
    ...(deps.modeCheck.mode === 'self-managed' ? { selfManaged: true } : {}),
  };
  if (info.attempt > 1) {
    // An earlier attempt may have reached Portal and lost its response: find the pairs it
    // made. A failure here must not fail the activity, which would call /v1/backup again.
    try {
      const fresh = new Set(CURVES.map((curve) => shares[curve].id));
      result.orphanedPairIds = await orphanedPairs(deps.portal, credentials.clientApiKey, info.scheduledTimestampMs - deps.orphanScanSkewMs, fresh);
    } catch (error) {
      result.orphanScanError = error instanceof Error ? error.message : String(error);
    }
  }
  Context.current().log.info('mpc backup shares received', {
    userId,
    pairIds: CURVES.map((curve) => shares[curve].id),
    orphaned: result.orphanedPairIds.length,
  });
  return result;
}
