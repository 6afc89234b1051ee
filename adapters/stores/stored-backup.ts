import { z } from 'zod';
import type { BackupPairIds, BackupShares } from '../../domain/backup-types';
import { CURVES, type Curve } from '../../domain/curves';
import { CiphertextBeingRewrappedError, NoCompletedBackupError, StoredBackupInvalidError } from '../../domain/errors';
import type { CiphertextStore } from './ciphertext-store';
import type { PortalClientInfo } from '../portal/portal-client';
import { BASE64 } from '../http/response-validation';
import { transitContext } from '../kms/transit-context';
import { ciphertextVersion, isBelowMinDecryptionVersion } from '../kms/kms-ciphertext';
import type { KmsProvider } from '../kms/kms-provider';

/**
 * Reading a completed backup back: shared by recovery, eject retrieval and the restore drill, so
 * all three agree on which backup is "the newest" and on what a restorable ciphertext is.
 */

/**
 * The newest completed backup share pair of each curve in Portal's client object (shared/portal-api.md,
 * open point 4: the newest `completed` pair is the one recovery uses). Throws NoCompletedBackupError
 * when a curve has none.
 */
export function newestCompletedPairs(userId: string, client: PortalClientInfo): BackupPairIds {
  const entries = CURVES.map((curve) => {
    const pairs = client.wallets
      .filter((wallet) => wallet.curve.toUpperCase() === curve)
      .flatMap((wallet) => wallet.backupSharePairs)
      .filter((pair) => pair.status.toLowerCase() === 'completed');
    if (pairs.length === 0) {
      throw new NoCompletedBackupError(`user ${userId} has no completed backup for ${curve} at Portal: back the wallet up first`);
    }
    // Newest by createdAt; pairs without a date count as oldest; ties keep Portal's order (last wins).
    const newest = pairs.reduce((best, pair) => (createdMs(pair.createdAt) >= createdMs(best.createdAt) ? pair : best));
    return [curve, newest.id] as const;
  });
  return Object.fromEntries(entries) as BackupPairIds;
}

/** The pair ids of the user's newest completed backup; none when it has none. */
export function newestPairIds(userId: string, client: PortalClientInfo): Set<string> {
  try {
    return new Set(Object.values(newestCompletedPairs(userId, client)));
  } catch (error) {
    if (error instanceof NoCompletedBackupError) return new Set();
    throw error;
  }
}

function createdMs(createdAt: string | undefined): number {
  const ms = createdAt === undefined ? Number.NaN : Date.parse(createdAt);
  return Number.isNaN(ms) ? Number.NEGATIVE_INFINITY : ms;
}

/** The stored ciphertext of each curve's pair (CiphertextNotFoundError when the store has none). */
export async function readStoredCiphertexts(store: Pick<CiphertextStore, 'get'>, userId: string, pairIds: BackupPairIds): Promise<Record<Curve, string>> {
  const entries: [Curve, string][] = [];
  for (const curve of CURVES) entries.push([curve, await store.get({ userId }, pairIds[curve], curve)]);
  return Object.fromEntries(entries) as Record<Curve, string>;
}

const storedShareSchema = z.object({ id: z.string().min(1), share: z.string().min(1).regex(BASE64, 'must be base64') }).strict();

/**
 * Why one curve's stored ciphertext cannot restore the wallet. `rewrapping`: its key version is
 * below min_decryption_version, so a rotation has rewrapped it since it was read, or is at it now.
 */
export type StoredShareProblem = { curve: Curve; pairId: string; reason: string; rewrapping?: true };

/**
 * Decrypts each curve's ciphertext in its user-and-pair context and checks it is Portal's exact
 * `{id, share}` object for that pair. Returns the rebuilt `/v1/backup` response, or every problem
 * found (a ciphertext altered or moved from another pair does not decrypt in this context).
 */
export async function openStoredBackup(
  transit: Pick<KmsProvider, 'decryptEach'>,
  userId: string,
  pairIds: BackupPairIds,
  ciphertexts: Record<Curve, string>,
): Promise<{ shares: BackupShares; problems: [] } | { shares?: undefined; problems: StoredShareProblem[] }> {
  const results = await transit.decryptEach(
    CURVES.map((curve) => ({ ciphertext: ciphertexts[curve], context: transitContext(userId, pairIds[curve]) })),
  );
  const problems: StoredShareProblem[] = [];
  const shares: Partial<BackupShares> = {};
  CURVES.forEach((curve, index) => {
    const pairId = pairIds[curve];
    const result = results[index]!;
    if ('error' in result && isBelowMinDecryptionVersion(result.error)) {
      const version = ciphertextVersion(ciphertexts[curve]) ?? '?';
      problems.push({ curve, pairId, rewrapping: true, reason: `is of key version ${version}, below the key's min_decryption_version: being rewrapped by a key rotation, retry` });
      return;
    }
    if ('error' in result) {
      problems.push({ curve, pairId, reason: `does not decrypt in the context of user ${userId} and pair ${pairId} (altered, or stored under another pair): ${result.error}` });
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(result.plaintext.toString('utf8'));
    } catch {
      problems.push({ curve, pairId, reason: 'decrypts to something that is not JSON, not a backup share' });
      return;
    }
    const share = storedShareSchema.safeParse(parsed);
    if (!share.success) {
      problems.push({ curve, pairId, reason: 'decrypts to JSON that is not a backup share {id, share}' });
    } else if (share.data.id !== pairId) {
      problems.push({ curve, pairId, reason: `decrypts to the share of pair ${share.data.id}, not of pair ${pairId}` });
    } else {
      shares[curve] = { id: share.data.id, share: share.data.share };
    }
  });
  if (problems.length > 0) return { problems };
  return { shares: shares as BackupShares, problems: [] };
}

/**
 * The stored backup's shares for callers that need them (recovery, eject). A ciphertext a key
 * rotation has rewrapped since it was read is read again from the store, once; one still below
 * the key's min_decryption_version is a CiphertextBeingRewrappedError (retryable), not an invalid
 * backup. Any other problem is a StoredBackupInvalidError.
 */
export async function requireStoredBackup(
  transit: Pick<KmsProvider, 'decryptEach'>,
  store: Pick<CiphertextStore, 'get'>,
  userId: string,
  pairIds: BackupPairIds,
  ciphertexts: Record<Curve, string>,
): Promise<BackupShares> {
  let opened = await openStoredBackup(transit, userId, pairIds, ciphertexts);
  if (opened.problems.some((p) => p.rewrapping)) {
    opened = await openStoredBackup(transit, userId, pairIds, await readStoredCiphertexts(store, userId, pairIds));
  }
  if (opened.shares) return opened.shares;
  const detail = opened.problems.map((p) => `${p.curve} pair ${p.pairId} ${p.reason}`).join('; ');
  if (opened.problems.some((p) => p.rewrapping)) throw new CiphertextBeingRewrappedError(`the stored backup of user ${userId}: ${detail}`);
  throw new StoredBackupInvalidError(`the stored backup of user ${userId} cannot restore the wallet: ${detail}`);
}
