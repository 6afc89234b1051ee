/**
 * The Vault policies of the service, as HCL, for one Transit key. The workers' policy encrypts and
 * decrypts only; key rotation needs more (docs/restore.md, "Key rotation"): give it to the tokens of the
 * workers that run rotations, and to no one else.
 */
export function workerPolicy(keyName: string, mount = 'transit', auditKey = AUDIT_SIGNING_KEY): string {
  return [
    `path "${mount}/encrypt/${keyName}" { capabilities = ["update"] }`,
    `path "${mount}/decrypt/${keyName}" { capabilities = ["update"] }`,
    // Lets the worker check the key at start; no "create", so a wrong key name is never made.
    `path "${mount}/keys/${keyName}" { capabilities = ["read"] }`,
    auditSealerPolicy(auditKey, mount),
  ].join('\n');
}

/** The Transit key that signs the audit chain's seals (AUDIT_SIGNING_KEY): ed25519, held by Vault only. */
export const AUDIT_SIGNING_KEY = 'audit-chain';

/** What a worker needs to seal the audit chain and verify it (mpc_backup_audit_chain_ok): sign and verify with the audit key. */
export function auditSealerPolicy(auditKey = AUDIT_SIGNING_KEY, mount = 'transit'): string {
  return [`path "${mount}/sign/${auditKey}" { capabilities = ["update"] }`, auditVerifierPolicy(auditKey, mount)].join('\n');
}

/**
 * An auditor's policy for `backup audit verify`: verify signatures with the audit key, nothing
 * else (no sign: an auditor cannot make seals; no encrypt or decrypt). Give the database
 * administrator neither this key's sign path nor a root token.
 */
export function auditVerifierPolicy(auditKey = AUDIT_SIGNING_KEY, mount = 'transit'): string {
  return [`path "${mount}/verify/${auditKey}" { capabilities = ["update"] }`, `path "${mount}/keys/${auditKey}" { capabilities = ["read"] }`].join('\n');
}

/** Creates the audit chain's signing key (ed25519, not exportable) if it is missing; `admin` writes with a token allowed to. */
export async function createAuditSigningKey(admin: { write(path: string, body: object): Promise<unknown> }, mount = 'transit', auditKey = AUDIT_SIGNING_KEY): Promise<void> {
  await admin.write(`${mount}/keys/${auditKey}`, { type: 'ed25519', exportable: false });
}

/** The workers' policy plus what `backup keys rotate` does: add a version, rewrap, raise min_decryption_version. */
export function keyRotationPolicy(keyName: string, mount = 'transit'): string {
  return [
    workerPolicy(keyName, mount),
    `path "${mount}/keys/${keyName}/rotate" { capabilities = ["update"] }`,
    `path "${mount}/rewrap/${keyName}" { capabilities = ["update"] }`,
    `path "${mount}/keys/${keyName}/config" { capabilities = ["update"] }`,
  ].join('\n');
}

/**
 * One operator's policy: sign with their own Transit key and nothing else. With Vault identities,
 * one templated policy serves every operator instead (docs/operations.md):
 * `path "transit/sign/operator-{{identity.entity.name}}" { capabilities = ["update"] }`.
 */
export function operatorSigningPolicy(keyName: string, mount = 'transit'): string {
  return `path "${mount}/sign/${keyName}" { capabilities = ["update"] }`;
}

/** What the workers add to verify operator actions: verify (never sign) with the operators' keys and the API's. */
export function operatorVerifyPolicy(operatorKeyPrefix = 'operator-', apiKey = 'mpc-backup-api', mount = 'transit'): string {
  return [`path "${mount}/verify/${operatorKeyPrefix}*" { capabilities = ["update"] }`, `path "${mount}/verify/${apiKey}" { capabilities = ["update"] }`].join('\n');
}
