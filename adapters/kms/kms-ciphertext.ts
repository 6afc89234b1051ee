/**
 * The self-describing ciphertext formats of the KMS providers, read without a KMS: which provider
 * made a ciphertext and which key version encrypts it (key rotation's census and checks).
 *
 * - Vault Transit: `vault:v<N>:<base64>`, Vault's own format, unchanged (ciphertexts stored before
 *   the KMS seam decrypt as they are).
 * - AWS KMS envelope, format 1: `awskms:e1:v<N>:<edk>:<iv>:<sealed>`, each part standard base64:
 *   `edk` the data key as KMS `GenerateDataKey` encrypted it (a KMS ciphertext blob, under the KMS key
 *   of version N and the encryption context), `iv` the 12-byte AES-GCM nonce, `sealed` the
 *   AES-256-GCM ciphertext followed by its 16-byte tag. Only the encrypted data key is stored; a
 *   rotation re-encrypts `edk` (KMS `ReEncrypt`) and keeps `iv` and `sealed`. A later format is `e2`.
 */

export type CiphertextFormat = 'vault-transit' | 'aws-kms-e1';

const VAULT = /^vault:v([0-9]{1,9}):/;
const AWS_KMS_E1 = /^awskms:e1:v([0-9]{1,9}):/;

/** A ciphertext of either provider, as the database's CHECK on custodian_shares accepts it (migration 005). */
export const KMS_CIPHERTEXT = /^(vault:v[0-9]+|awskms:e1:v[0-9]+):./;

/** The provider format of a stored ciphertext, or undefined when it is none of ours. */
export function ciphertextFormat(ciphertext: string): CiphertextFormat | undefined {
  if (VAULT.test(ciphertext)) return 'vault-transit';
  if (AWS_KMS_E1.test(ciphertext)) return 'aws-kms-e1';
  return undefined;
}

/** The key version a ciphertext was made with (`vault:v<N>:…`, `awskms:e1:v<N>:…`), or undefined if it is not one of ours. */
export function ciphertextVersion(ciphertext: string): number | undefined {
  const match = VAULT.exec(ciphertext) ?? AWS_KMS_E1.exec(ciphertext);
  return match ? Number(match[1]) : undefined;
}

/** The same version, as a PostgreSQL expression over `column` (0 for rows that are not ours: stale). */
export function ciphertextVersionSql(column: string): string {
  return `COALESCE(substring(${column} from '^(?:vault|awskms:e1):v([0-9]{1,9}):')::int, 0)`;
}

/**
 * The reason every provider gives for a ciphertext whose key version is below the key's
 * min_decryption_version (Vault's own words; the AWS KMS provider uses them for a disabled version).
 */
export const BELOW_MIN_DECRYPTION_VERSION = 'disallowed by policy (too old)';

/** Whether a provider's reason for not decrypting one item is that its key version is below min_decryption_version. */
export function isBelowMinDecryptionVersion(reason: string): boolean {
  return reason.includes(BELOW_MIN_DECRYPTION_VERSION);
}
