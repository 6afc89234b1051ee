import { requireStoredBackup } from '../../adapters/stores/stored-backup';
import { copyStore } from '../../adapters/stores/ciphertext-copies';
import { currentRun } from '../backup/backup-receipts';
import type { DecryptedBackup, FoundBackup, RecoveryActivityDeps } from './recovery-activity-types';
import { decryptedClaims } from './recovery-receipts';

/**
 * Recovery step 2: decrypt in each pair's context and rebuild the `/v1/backup` response, sealed.
 * Its receipt binds the sealed box to the backup's pairs, for RECOVER to check.
 */
export async function decryptStoredBackup(deps: RecoveryActivityDeps, { userId, backupPairIds, ciphertexts, store }: { userId: string } & FoundBackup): Promise<DecryptedBackup> {
  // A ciphertext rewrapped since FIND is read again from the store its copy came from.
  const shares = await requireStoredBackup(deps.transit, copyStore(deps, store), userId, backupPairIds, ciphertexts);
  const sealed = deps.sealer.seal(userId, shares, 'backup-shares');
  return { ...sealed, receipt: deps.receipts.issue('DECRYPT', currentRun(), decryptedClaims(userId, backupPairIds, sealed)) };
}
