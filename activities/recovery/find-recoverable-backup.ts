import { Context } from '@temporalio/activity';
import { RecoveryNotConfiguredError } from '../../domain/errors';
import { recoveryWorkflowId } from '../../domain/user-id';
import { newestCompletedPairs, readStoredCiphertexts } from '../../adapters/stores/stored-backup';
import { firstVerifiedCopy, storeCopies } from '../../adapters/stores/ciphertext-copies';
import { requireOwnWorkflowId } from '../backup/backup-receipts';
import type { BackupPairIds } from '../../domain/backup-types';
import type { FoundBackup, RecoveryActivityDeps } from './recovery-activity-types';

/**
 * Recovery step 1: the newest completed backup at Portal, and its ciphertexts from the store (with
 * copies in several, from the first copy that verifies), naming the store they came from.
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
  const copy = await findCopy(deps, userId, backupPairIds);
  Context.current().log.info('recoverable backup found', { userId, backupPairIds, store: copy.store, skippedCopies: copy.skipped });
  return { backupPairIds, ciphertexts: copy.ciphertexts, store: copy.store, ...(copy.skipped.length > 0 ? { skippedCopies: copy.skipped } : {}) };
}

/**
 * One store: its ciphertexts as read (DECRYPT verifies them, as before copies). Several: the first
 * copy that verifies, so DECRYPT gets one that restores while another store is down or has lost its copy.
 */
async function findCopy(deps: RecoveryActivityDeps, userId: string, pairIds: BackupPairIds): Promise<{ store: string; ciphertexts: FoundBackup['ciphertexts']; skipped: string[] }> {
  const stores = storeCopies(deps);
  const [only] = stores;
  if (only && stores.length === 1) return { store: only.kind, ciphertexts: await readStoredCiphertexts(only, userId, pairIds), skipped: [] };
  return firstVerifiedCopy(deps.transit, stores, userId, pairIds);
}
