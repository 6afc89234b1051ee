/**
 * The KMS seam: what encrypts, decrypts and rewraps the client backup shares and the custodian
 * shares, and rotates the key they are under. One file per provider behind this interface, picked
 * by KMS_PROVIDER in kms-provider-factory.ts: Vault Transit (vault-transit.ts) or AWS KMS envelope
 * encryption (aws-kms-envelope.ts). Nothing here knows about Portal.
 *
 * The contract every provider keeps:
 * - A `context` binds a ciphertext to what it protects (transit-context.ts: user and pair, or client
 *   and pair for a custodian share). A ciphertext decrypts, and rewraps, only in the context it was
 *   made in; a ciphertext moved to another user or pair does not.
 * - Ciphertexts are strings in the provider's own self-describing, versioned format
 *   (kms-ciphertext.ts), which carries the key version that encrypts them. A provider never changes
 *   the format of ciphertexts it made earlier: they decrypt as they are.
 * - Key versions: `rotateKey` adds one, which new encryptions and rewraps then use;
 *   `setMinDecryptionVersion` makes ciphertexts of older versions stop decrypting, and a provider
 *   answers those with a reason that isBelowMinDecryptionVersion recognises. Neither is idempotent
 *   on its own: callers compare `keyVersions()` first (key-rotation-activities.ts).
 * - `encryptBatch` and `decryptBatch` fail whole (one item's failure throws); `decryptEach` and
 *   `rewrapEach` report each item's own failure as `{error}` (an altered ciphertext, a wrong context,
 *   a version below the minimum) and throw only for failures of the whole call.
 * - Failures of the whole call are typed domain errors: retryable when the KMS is down, slow or
 *   throttling; a permission error (VaultPermissionError, KmsPermissionError) when it refuses the
 *   caller; a request error otherwise. Messages carry no plaintext, key material or credentials.
 * - Plaintexts a provider returns are the caller's to zero; plaintext key material a provider
 *   handles itself (data keys) is zeroed before the call returns and never leaves it.
 */

export type KmsProviderKind = 'vault-transit' | 'aws-kms';

export interface EncryptItem {
  plaintext: Buffer;
  /** base64 binding context, see transitContext */
  context: string;
}

export interface DecryptItem {
  ciphertext: string;
  context: string;
}

export interface RewrapItem {
  ciphertext: string;
  /** The same context the ciphertext was made in (see transitContext). */
  context: string;
}

/** The version numbers of the key. */
export interface KmsKeyVersions {
  /** The version new encryptions and rewraps use. */
  latestVersion: number;
  /** Ciphertexts of older versions no longer decrypt (isBelowMinDecryptionVersion). */
  minDecryptionVersion: number;
  minEncryptionVersion: number;
}

export type DecryptOutcome = { plaintext: Buffer } | { error: string };
export type RewrapOutcome = { ciphertext: string } | { error: string };

export interface KmsProvider {
  readonly provider: KmsProviderKind;
  /** The key's name for reports (a Transit key name, an AWS KMS alias); never a secret. */
  readonly keyName: string;
  encryptBatch(items: EncryptItem[]): Promise<string[]>;
  decryptBatch(items: DecryptItem[]): Promise<Buffer[]>;
  decryptEach(items: DecryptItem[]): Promise<DecryptOutcome[]>;
  /** Re-encrypts each ciphertext under `keyVersion` (latest when absent), in its own context, without the plaintext leaving the KMS. */
  rewrapEach(items: RewrapItem[], keyVersion?: number): Promise<RewrapOutcome[]>;
  keyVersions(): Promise<KmsKeyVersions>;
  rotateKey(): Promise<KmsKeyVersions>;
  setMinDecryptionVersion(version: number): Promise<KmsKeyVersions>;
  /**
   * At process start: throws ConfigError when the configured key cannot be the one intended (missing,
   * wrong type); warns and resolves when it cannot be checked now (an outage is survivable).
   */
  checkKeyAtStart(warn: (message: string) => void): Promise<void>;
}
