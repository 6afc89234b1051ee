import { CURVES } from '../../domain/curves';
import { SealedSharesError } from '../../domain/errors';
import type { ActivityDeps, EncryptSharesInput, EncryptSharesResult } from '../backup-activity-types';
import { currentRun, encryptedClaims } from './backup-receipts';
import { sha256Hex, sharePlaintext } from '../share-plaintext';
import { transitContext } from '../../adapters/kms/transit-context';

/**
 * Step 2: encrypt both curves in one Vault Transit batch, bound to user and pair. The receipt
 * binds each ciphertext to the digest of the share it holds, for step 3 to check.
 */
export async function encryptShares(deps: ActivityDeps, { userId, sealedShares, shares: legacyShares }: EncryptSharesInput): Promise<EncryptSharesResult> {
  const shares = sealedShares ? deps.sealer.unseal(userId, sealedShares) : legacyShares;
  if (!shares) throw new SealedSharesError('encryptShares was called without shares: the workflow input is malformed');
  const plaintexts = CURVES.map((curve) => sharePlaintext(shares[curve]));
  const ciphertexts = await deps.transit.encryptBatch(
    CURVES.map((curve, index) => ({ plaintext: plaintexts[index]!, context: transitContext(userId, shares[curve].id) })),
  );
  const entries = CURVES.map((curve, index) => [
    curve,
    { pairId: shares[curve].id, ciphertext: ciphertexts[index]!, plaintextSha256: sha256Hex(plaintexts[index]!) },
  ]);
  const encrypted = Object.fromEntries(entries) as EncryptSharesResult;
  return { ...encrypted, receipt: deps.receipts.issue('ENCRYPT', currentRun(), encryptedClaims(userId, encrypted)) };
}
