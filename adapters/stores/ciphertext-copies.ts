import type { BackupPairIds, BackupShares } from '../../domain/backup-types';
import type { Curve } from '../../domain/curves';
import { BackupDomainError, CiphertextNotFoundError, StoredBackupInvalidError } from '../../domain/errors';
import type { KmsProvider } from '../kms/kms-provider';
import type { CiphertextStore } from './ciphertext-store';
import { readStoredCiphertexts, requireStoredBackup } from './stored-backup';

/**
 * Copies of every ciphertext in several stores (CIPHERTEXT_STORES=portal,postgres), so a backup
 * survives the loss of one store. The stores keep the same ciphertext string per pair (one
 * encryption, written to each); each store keeps its own write-once contract (ciphertext-store.ts).
 * The rules shared by every reader: the configured order is the order of preference (the first
 * store is the primary), and a copy counts only once it decrypts to Portal's `{id, share}`.
 */

/** What holds the copies: the primary `store`, and every store in order when there are several. */
export interface StoreCopiesDeps {
  store: CiphertextStore;
  /** Every store that keeps a copy, the primary first; absent (or one) means the primary's copy only. */
  copies?: readonly CiphertextStore[];
}

/** Every store that keeps a copy, in the configured order (the primary first). */
export function storeCopies(deps: StoreCopiesDeps): readonly CiphertextStore[] {
  return deps.copies && deps.copies.length > 0 ? deps.copies : [deps.store];
}

/** A copy read from one store: its ciphertexts, or why it has none (the store's "not found"). */
export type CopyRead = { store: string; ciphertexts: Record<Curve, string> } | { store: string; missing: string };

/** Each store's copy of the pairs' ciphertexts; a store that fails otherwise (unavailable) throws. */
export async function readCopies(stores: readonly CiphertextStore[], userId: string, pairIds: BackupPairIds): Promise<CopyRead[]> {
  return Promise.all(
    stores.map(async (store): Promise<CopyRead> => {
      try {
        return { store: store.kind, ciphertexts: await readStoredCiphertexts(store, userId, pairIds) };
      } catch (error) {
        if (!(error instanceof CiphertextNotFoundError)) throw error;
        return { store: store.kind, missing: error.message };
      }
    }),
  );
}

/** The copy recovery and eject restore from: which store, its ciphertexts, and the shares they decrypt to. */
export interface VerifiedCopy {
  store: string;
  ciphertexts: Record<Curve, string>;
  shares: BackupShares;
  /** Copies before it that did not verify, each named by its store and why (no secrets). */
  skipped: string[];
}

/**
 * The first copy, in the configured order, that reads and decrypts to Portal's `{id, share}` of
 * each pair. A copy that is missing, invalid or whose store is down is skipped for the next. With
 * one store its own error is thrown unchanged; with several, see `noCopyVerifies`.
 */
export async function firstVerifiedCopy(
  transit: Pick<KmsProvider, 'decryptEach'>,
  stores: readonly CiphertextStore[],
  userId: string,
  pairIds: BackupPairIds,
): Promise<VerifiedCopy> {
  const failures: { store: string; error: BackupDomainError }[] = [];
  for (const store of stores) {
    try {
      const ciphertexts = await readStoredCiphertexts(store, userId, pairIds);
      const shares = await requireStoredBackup(transit, store, userId, pairIds, ciphertexts);
      return { store: store.kind, ciphertexts, shares, skipped: failures.map(describeFailure) };
    } catch (error) {
      if (!(error instanceof BackupDomainError)) throw error;
      failures.push({ store: store.kind, error });
    }
  }
  throw noCopyVerifies(userId, failures);
}

function describeFailure(failure: { store: string; error: BackupDomainError }): string {
  return `${failure.store}: ${failure.error.name}: ${failure.error.message}`;
}

/**
 * Why no copy verified. One store: its own error. Several: a transient failure first (a copy may
 * verify once its store is back: retry), then an error about the caller or the KMS (the same for
 * every copy), then "not found" when every copy is missing, else "invalid", naming every store.
 */
function noCopyVerifies(userId: string, failures: { store: string; error: BackupDomainError }[]): BackupDomainError {
  const [only] = failures;
  if (failures.length === 1 && only) return only.error;
  const transient = failures.find((failure) => failure.error.retryable);
  if (transient) return transient.error;
  const named = failures.map(describeFailure).join('; ');
  const aboutCaller = failures.find((f) => !(f.error instanceof CiphertextNotFoundError) && !(f.error instanceof StoredBackupInvalidError));
  if (aboutCaller) return aboutCaller.error;
  if (failures.every((failure) => failure.error instanceof CiphertextNotFoundError)) {
    return new CiphertextNotFoundError(`no store holds a copy of the backup of user ${userId}: ${named}`);
  }
  return new StoredBackupInvalidError(`no copy of the stored backup of user ${userId} restores the wallet: ${named}`);
}

/** The store of the copy named `kind` (a copy found earlier), else the primary (results recorded before copies name none). */
export function copyStore(deps: StoreCopiesDeps, kind: string | undefined): CiphertextStore {
  return storeCopies(deps).find((store) => store.kind === kind) ?? deps.store;
}
