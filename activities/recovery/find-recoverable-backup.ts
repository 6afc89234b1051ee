import { Context } from '@temporalio/activity';
import { RecoveryNotConfiguredError } from '../../domain/errors';
import { recoveryWorkflowId } from '../../domain/user-id';
import { newestCompletedPairs } from '../../adapters/stores/stored-backup';
import { firstVerifiedCopy, storeCopies } from '../../adapters/stores/ciphertext-copies';
import { requireOwnWorkflowId } from '../backup/backup-receipts';
import type { FoundBackup, RecoveryActivityDeps } from './recovery-activity-types';

/**
 * Recovery step 1: the newest completed backup at Portal, and the ciphertexts of its first copy that
 * verifies (decrypts to Portal's `{id, share}`; the shares stay here), naming the store they came from.
 */
export async function findRecoverableBackup(deps: RecoveryActivityDeps, { userId, approvedAtMs }: { userId: string; approvedAtMs?: number }): Promise<FoundBackup> {
  if (!deps.handover) {
    throw new RecoveryNotConfiguredError(
      'recovery needs SIGNING_SHARES_URL on the workers (the backend route that keeps the new signing shares); set it and start the recovery again',
    );
  }
  requireOwnWorkflowId(recoveryWorkflowId(userId), userId);
  // An approved recovery counts as started when approved: a backup that began while it waited goes first.
  await deps.runGuard.assertNoBackupRunning(userId, Context.current().info.workflowExecution, approvedAtMs);
  const { clientApiKey } = await deps.credentials.load(userId);
  const backupPairIds = newestCompletedPairs(userId, await deps.portal.getClient(clientApiKey));
  const copy = await firstVerifiedCopy(deps.transit, storeCopies(deps), userId, backupPairIds);
  Context.current().log.info('recoverable backup found', { userId, backupPairIds, store: copy.store, skippedCopies: copy.skipped });
  return { backupPairIds, ciphertexts: copy.ciphertexts, store: copy.store, ...(copy.skipped.length > 0 ? { skippedCopies: copy.skipped } : {}) };
}
