import { sealMessage, verifyAuditChain, type AuditSigner, type AuditVerification } from './audit-chain';
import type { AuditTrail } from './audit-trail';

/** Rows older than this past the newest valid seal fail verification (default: 15 minutes, many seal intervals). */
export const DEFAULT_MAX_UNSEALED_AGE_MS = 15 * 60_000;

/**
 * Signs the chain's head when it moved since the newest seal; the seal's position, or undefined
 * when there was nothing new to seal. Two sealers at once may both sign the same head: harmless
 * (two valid seals of one row).
 */
export async function sealAuditHead(trail: AuditTrail, signer: AuditSigner, now: () => Date = () => new Date()): Promise<number | undefined> {
  const head = await trail.head();
  if (!head || head.seq <= (await trail.sealedSeq())) return undefined;
  const seal = { seq: head.seq, headHash: head.hash, signedAt: now().toISOString() };
  const signature = await signer.sign(sealMessage(seal));
  await trail.addSeal({ ...seal, keyName: signer.keyName, signature });
  return head.seq;
}

/**
 * Walks the whole chain and checks every seal's signature with Vault (one batch call): the first
 * row changed, inserted or removed, a rewrite the seals catch, a tail removed after a seal.
 */
export async function verifyAuditTrail(
  trail: AuditTrail,
  signer: AuditSigner,
  options: { maxUnsealedAgeMs?: number; now?: number } = {},
): Promise<AuditVerification> {
  const [rows, seals] = await Promise.all([trail.chain(), trail.seals()]);
  const valid = await signer.verifyEach(seals.map((seal) => ({ message: sealMessage(seal), signature: seal.signature })));
  const validIds = new Set(seals.filter((_, index) => valid[index]).map((seal) => seal.id));
  return verifyAuditChain(rows, seals, {
    signatureValid: (seal) => validIds.has(seal.id),
    maxUnsealedAgeMs: options.maxUnsealedAgeMs ?? DEFAULT_MAX_UNSEALED_AGE_MS,
    now: options.now ?? Date.now(),
  });
}
