import { Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import {
  BackupDomainError,
  CiphertextConflictError,
  CiphertextCopyDivergesError,
  CiphertextNotFoundError,
  CiphertextNotReadableError,
  CiphertextStoreUnavailableError,
  CiphertextVerificationError,
} from '../../domain/errors';
import type { CiphertextStore, StoredCiphertext } from '../../adapters/stores/ciphertext-store';
import { storeCopies } from '../../adapters/stores/ciphertext-copies';
import type { ActivityDeps, ReceiptResult, StoreCiphertextsInput } from '../backup-activity-types';
import { currentRun, encryptedClaims, pairClaims, pairIdsOfEncrypted } from './backup-receipts';
import { sha256Hex } from '../share-plaintext';
import { transitContext } from '../../adapters/kms/transit-context';

/**
 * Step 3: store both ciphertexts in every store that keeps a copy (CIPHERTEXT_STORES), read each
 * copy back and check the ciphertexts decrypt to what was encrypted.
 * A retry resumes rather than restarts, per copy: each store looks at what an earlier attempt
 * already stored, writes only what is missing, and reads back only what it wrote (its look was the
 * others' read-back). A copy that holds a different ciphertext is a permanent error naming its store.
 * It stores only ciphertexts that step 2 of this run made (its receipt), and its own receipt tells
 * step 4 that the pairs' ciphertexts are stored and verified in every copy.
 */
export async function storeCiphertexts(deps: ActivityDeps, { userId, encrypted, firstCall, requireReceipts }: StoreCiphertextsInput): Promise<ReceiptResult> {
  if (requireReceipts) deps.receipts.verify('ENCRYPT', currentRun(), encryptedClaims(userId, encrypted), encrypted.receipt);
  const attempt = Context.current().info.attempt;
  const items = CURVES.map((curve) => ({ curve, pairId: encrypted[curve].pairId, ciphertext: encrypted[curve].ciphertext }));
  const stores = storeCopies(deps);
  const copy = { userId, items, attempt, freshPairs: attempt === 1 && firstCall !== false, maxNotReadableAttempts: deps.maxNotReadableAttempts };
  // Every copy at once, each to its end: a store that is down does not cut another's write short.
  const outcomes = await Promise.allSettled(stores.map((store) => storeCopy(store, copy).catch((error: unknown) => { throw namedCopy(stores, store, error); })));
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  // Every copy read back equal to the ciphertext written, so one decryption verifies them all.
  const plaintexts = await deps.transit.decryptBatch(items.map((item) => ({ ciphertext: item.ciphertext, context: transitContext(userId, item.pairId) })));
  CURVES.forEach((curve, index) => {
    if (sha256Hex(plaintexts[index]!) !== encrypted[curve].plaintextSha256) {
      throw new CiphertextVerificationError(
        `the stored ciphertext for pair ${encrypted[curve].pairId} does not decrypt to the share that was encrypted`,
      );
    }
  });
  Context.current().log.info('ciphertexts stored and verified', { userId, store: deps.store.kind, copies: stores.map((store) => store.kind) });
  return { receipt: deps.receipts.issue('STORE', currentRun(), pairClaims(userId, pairIdsOfEncrypted(encrypted))) };
}

interface CopyToStore {
  userId: string;
  items: StoredCiphertext[];
  attempt: number;
  freshPairs: boolean;
  maxNotReadableAttempts: number;
}

/** One store's copy: written where missing (write-once), then what was written read back and compared. */
async function storeCopy(store: CiphertextStore, copy: CopyToStore): Promise<void> {
  const context = { userId: copy.userId };
  const { alreadyStored } = await store.put(context, copy.items, { freshPairs: copy.freshPairs });
  // Both read-backs at once: they are independent, and one at a time doubles the store's latency.
  await Promise.all(copy.items.filter((item) => !alreadyStored.includes(item.pairId)).map((item) => readBack(store, copy, item)));
}

async function readBack(store: CiphertextStore, copy: CopyToStore, { curve, pairId, ciphertext }: StoredCiphertext): Promise<void> {
  const stored = await store.get({ userId: copy.userId }, pairId, curve).catch((error: unknown) => {
    if (!(error instanceof CiphertextNotFoundError)) throw error;
    // Just written: "not found" means not readable yet (replication), unless it lasts.
    if (copy.attempt >= copy.maxNotReadableAttempts) {
      throw new CiphertextNotReadableError(
        `the ${store.kind} store accepted the ciphertext of pair ${pairId} but still has none ` +
          `after ${copy.attempt} attempts: check the store, then retry (the pair stays unmarked)`,
      );
    }
    throw new CiphertextStoreUnavailableError(`the ciphertext of pair ${pairId} is not readable yet in the ${store.kind} store; will retry`);
  });
  if (stored !== ciphertext) {
    throw new CiphertextVerificationError(`the ciphertext read back from the ${store.kind} store for pair ${pairId} differs from the one written`);
  }
}

/**
 * With several copies, a failure names the copy's store, and an existing copy that holds another
 * ciphertext is CiphertextCopyDivergesError (permanent: nothing is overwritten, nothing marked).
 * With one store, errors pass unchanged.
 */
function namedCopy(stores: readonly CiphertextStore[], store: CiphertextStore, error: unknown): unknown {
  if (stores.length <= 1 || !(error instanceof BackupDomainError)) return error;
  if (error instanceof CiphertextConflictError) {
    return new CiphertextCopyDivergesError(`the ${store.kind} copy holds a different ciphertext for a pair of this backup (${error.message}): nothing was overwritten; see docs/storage.md`);
  }
  error.message = `${store.kind} copy: ${error.message}`;
  return error;
}
