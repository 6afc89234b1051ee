import { Context } from '@temporalio/activity';
import { CURVES } from '../../domain/curves';
import { CiphertextNotFoundError, CiphertextNotReadableError, CiphertextStoreUnavailableError, CiphertextVerificationError } from '../../domain/errors';
import type { ActivityDeps, ReceiptResult, StoreCiphertextsInput } from '../backup-activity-types';
import { currentRun, encryptedClaims, pairClaims, pairIdsOfEncrypted } from './backup-receipts';
import { sha256Hex } from '../share-plaintext';
import { transitContext } from '../../adapters/kms/transit-context';

/**
 * Step 3: store both ciphertexts, read them back and check they decrypt to what was encrypted.
 * A retry resumes rather than restarts: the store looks at what an earlier attempt already stored,
 * writes only what is missing, and reads back only what it wrote (its look was the others' read-back).
 * It stores only ciphertexts that step 2 of this run made (its receipt), and its own receipt tells
 * step 4 that the pairs' ciphertexts are stored and verified.
 */
export async function storeCiphertexts(deps: ActivityDeps, { userId, encrypted, firstCall, requireReceipts }: StoreCiphertextsInput): Promise<ReceiptResult> {
  if (requireReceipts) deps.receipts.verify('ENCRYPT', currentRun(), encryptedClaims(userId, encrypted), encrypted.receipt);
  const attempt = Context.current().info.attempt;
  const context = { userId };
  const { alreadyStored } = await deps.store.put(
    context,
    CURVES.map((curve) => ({ curve, pairId: encrypted[curve].pairId, ciphertext: encrypted[curve].ciphertext })),
    { freshPairs: attempt === 1 && firstCall !== false },
  );
  // Both read-backs at once: they are independent, and one at a time doubles the store's latency.
  const readBack = await Promise.all(CURVES.map(async (curve) => {
    const { pairId, ciphertext } = encrypted[curve];
    if (alreadyStored.includes(pairId)) return ciphertext;
    const stored = await deps.store.get(context, pairId, curve).catch((error: unknown) => {
      if (!(error instanceof CiphertextNotFoundError)) throw error;
      // Just written: "not found" means not readable yet (replication), unless it lasts.
      if (attempt >= deps.maxNotReadableAttempts) {
        throw new CiphertextNotReadableError(
          `the ${deps.store.kind} store accepted the ciphertext of pair ${pairId} but still has none ` +
            `after ${attempt} attempts: check the store, then retry (the pair stays unmarked)`,
        );
      }
      throw new CiphertextStoreUnavailableError(`the ciphertext of pair ${pairId} is not readable yet; will retry`);
    });
    if (stored !== ciphertext) {
      throw new CiphertextVerificationError(
        `the ciphertext read back from the ${deps.store.kind} store for pair ${pairId} differs from the one written`,
      );
    }
    return stored;
  }));
  const plaintexts = await deps.transit.decryptBatch(
    CURVES.map((curve, index) => ({
      ciphertext: readBack[index]!,
      context: transitContext(userId, encrypted[curve].pairId),
    })),
  );
  CURVES.forEach((curve, index) => {
    if (sha256Hex(plaintexts[index]!) !== encrypted[curve].plaintextSha256) {
      throw new CiphertextVerificationError(
        `the stored ciphertext for pair ${encrypted[curve].pairId} does not decrypt to the share that was encrypted`,
      );
    }
  });
  Context.current().log.info('ciphertexts stored and verified', { userId, store: deps.store.kind });
  return { receipt: deps.receipts.issue('STORE', currentRun(), pairClaims(userId, pairIdsOfEncrypted(encrypted))) };
}
