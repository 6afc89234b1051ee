import { Context } from '@temporalio/activity';
import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { currentRun } from '../backup/backup-receipts';
import { orphanedSigningPairs } from '../backup/orphaned-pairs';
import type { RecoverAtPortalInput, RecoveredAtPortal, RecoveryActivityDeps } from './recovery-activity-types';
import { decryptedClaims } from './recovery-receipts';

/**
 * Recovery step 3: `POST /v1/recover`. Not idempotent: an attempt whose answer was lost made
 * signing pairs nobody holds; a later attempt names them (incomplete, created since this step was
 * scheduled) so the result reports them. They are never marked, so never used.
 */
export async function recoverAtPortal(deps: RecoveryActivityDeps, { userId, sealedBackup, backupPairIds, requireReceipts }: RecoverAtPortalInput): Promise<RecoveredAtPortal> {
  if (requireReceipts) {
    deps.receipts.verify('DECRYPT', currentRun(), decryptedClaims(userId, backupPairIds ?? ({} as BackupPairIds), sealedBackup), sealedBackup?.receipt);
  }
  const info = Context.current().info;
  const backup = deps.sealer.unseal(userId, sealedBackup, 'backup-shares');
  const { clientApiKey } = await deps.credentials.load(userId);
  const signing = await deps.portal.recover(clientApiKey, backup);
  const signingPairIds = Object.fromEntries(CURVES.map((curve) => [curve, signing[curve].id])) as BackupPairIds;
  const result: RecoveredAtPortal = {
    sealedSigningShares: deps.sealer.seal(userId, signing, 'signing-shares'),
    signingPairIds,
    orphanedSigningPairIds: [],
  };
  if (info.attempt > 1) {
    try {
      const since = info.scheduledTimestampMs - deps.orphanScanSkewMs;
      result.orphanedSigningPairIds = await orphanedSigningPairs(deps.portal, clientApiKey, since, new Set(Object.values(signingPairIds)));
    } catch (error) {
      // Not a reason to call /v1/recover again (that would make more pairs): the workflow looks again.
      result.orphanScanError = error instanceof Error ? error.message : String(error);
    }
  }
  Context.current().log.info('wallet recovered at Portal', {
    userId,
    signingPairIds,
    orphaned: result.orphanedSigningPairIds.length,
    orphanScanFailed: result.orphanScanError !== undefined,
  });
  return result;
}

/**
 * After RECOVER's own look for orphaned signing pairs failed: look again, in an activity of its own
 * (Temporal retries it; its failure only leaves a note in the result).
 */
export async function findOrphanedSigningPairs(deps: RecoveryActivityDeps, { userId, sinceMs, exclude }: { userId: string; sinceMs: number; exclude: string[] }): Promise<string[]> {
  const { clientApiKey } = await deps.credentials.load(userId);
  return orphanedSigningPairs(deps.portal, clientApiKey, sinceMs - deps.orphanScanSkewMs, new Set(exclude));
}
