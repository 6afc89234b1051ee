import type { EncryptedShares } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { SealedSharesError } from '../../domain/errors';
import type { ActivityDeps, EncryptSharesInput } from '../backup-activity-types';
import { sha256Hex, sharePlaintext } from '../share-plaintext';
import { transitContext } from '../transit-context';

/** Step 2: encrypt both curves in one Vault Transit batch, bound to user and pair. */
export async function encryptShares(deps: ActivityDeps, { userId, sealedShares, shares: legacyShares }: EncryptSharesInput): Promise<EncryptedShares> {
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
  return Object.fromEntries(entries) as EncryptedShares;
}
