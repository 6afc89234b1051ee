import { requireStoredBackup } from '../../adapters/stores/stored-backup';
import { currentRun } from '../backup/backup-receipts';
import type { DecryptedBackup, FoundBackup, RecoveryActivityDeps } from './recovery-activity-types';
import { decryptedClaims } from './recovery-receipts';

/**
 * Recovery step 2: decrypt in each pair's context and rebuild the `/v1/backup` response, sealed.
 * Its receipt binds the sealed box to the backup's pairs, for RECOVER to check.
 */
export async function decryptStoredBackup(deps: RecoveryActivityDeps, { userId, backupPairIds, ciphertexts }: { userId: string } & FoundBackup): Promise<DecryptedBackup> {
  const shares = await requireStoredBackup(deps.transit, deps.store, userId, backupPairIds, ciphertexts);
  const sealed = deps.sealer.seal(userId, shares, 'backup-shares');
  return { ...sealed, receipt: deps.receipts.issue('DECRYPT', currentRun(), decryptedClaims(userId, backupPairIds, sealed)) };
}
