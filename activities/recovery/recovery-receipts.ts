import type { BackupPairIds, SealedShares } from '../../domain/backup-types';
import { pairClaims } from '../backup/backup-receipts';
import { sha256Hex } from '../share-plaintext';

/** DECRYPT's facts: the backup's pairs and the digest of the sealed box made from them. */
export function decryptedClaims(userId: string, backupPairIds: BackupPairIds, sealed: SealedShares | undefined) {
  return { ...pairClaims(userId, backupPairIds), sealedSha256: sha256Hex(Buffer.from(String(sealed?.data), 'utf8')) };
}
