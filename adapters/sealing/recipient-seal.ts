import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { isRecipientKey } from '../../domain/operator-action';

/**
 * Seals released shares to one person: JWE (RFC 7516) compact serialization, ECDH-ES+A256KW on an
 * X25519 key the requester made for this one eject, A256GCM content encryption (the `jose`
 * library: standard, audited format any JWE tool opens). The private key never leaves the
 * requester's machine; the workers, the database and Temporal only ever see the public half and
 * the sealed text. The protected header binds the release (`kid` = workflow and run), so a sealed
 * release cannot be passed off as another's.
 */
const ALG = 'ECDH-ES+A256KW';
const ENC = 'A256GCM';

/** A one-time recipient key pair: the public half (base64url, signed into the request) and the private JWK (for the requester's file). */
export interface RecipientKeyPair {
  publicKey: string;
  privateJwk: JWK;
}

/** Thrown when a sealed release cannot be opened with the given key (wrong key, other release, or altered). */
export class SealedReleaseError extends Error {
  override readonly name = 'SealedReleaseError';
}

export async function newRecipientKeyPair(): Promise<RecipientKeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(ALG, { crv: 'X25519', extractable: true });
  const { x } = await exportJWK(publicKey);
  if (!isRecipientKey(x)) throw new Error('jose made an X25519 key of an unexpected form');
  return { publicKey: x, privateJwk: await exportJWK(privateKey) };
}

/** Seals `plaintext` to the recipient's public key (as signed in the request); `kid` names the release. */
export async function sealToRecipient(plaintext: Uint8Array, recipient: string, kid: string): Promise<string> {
  if (!isRecipientKey(recipient)) throw new SealedReleaseError('the recipient is not an X25519 public key');
  const key = await importJWK({ kty: 'OKP', crv: 'X25519', x: recipient }, ALG);
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg: ALG, enc: ENC, kid }).encrypt(key);
}

/** Opens a sealed release with the requester's private JWK; refuses one sealed for another release than `kid`. */
export async function openSealed(jwe: string, privateJwk: JWK, kid: string): Promise<Uint8Array> {
  let opened;
  try {
    const key = await importJWK(privateJwk, ALG);
    opened = await compactDecrypt(jwe, key, { keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: [ENC] });
  } catch (error) {
    throw new SealedReleaseError(`the sealed release does not open with this key file (${(error as Error).name}): use the key file written by \`eject request\` for this release`);
  }
  if (opened.protectedHeader.kid !== kid) throw new SealedReleaseError(`the sealed release is for ${String(opened.protectedHeader.kid)}, not ${kid}`);
  return opened.plaintext;
}
