/**
 * The Vault policies of the service, as HCL, for one Transit key. The workers' policy encrypts and
 * decrypts only; key rotation needs more (docs/restore.md, "Key rotation"): give it to the tokens of the
 * workers that run rotations, and to no one else.
 */
export function workerPolicy(keyName: string, mount = 'transit'): string {
  return [
    `path "${mount}/encrypt/${keyName}" { capabilities = ["update"] }`,
    `path "${mount}/decrypt/${keyName}" { capabilities = ["update"] }`,
    // Lets the worker check the key at start; no "create", so a wrong key name is never made.
    `path "${mount}/keys/${keyName}" { capabilities = ["read"] }`,
  ].join('\n');
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
 * An operator who may run eject: decrypt with the key, nothing else (no encrypt, no key read; Vault's
 * `default` policy adds the token lookup the audit record names the caller by). Eject runs with the
 * operator's own token, so this policy is the authorization Vault checks.
 */
export function ejectOperatorPolicy(keyName: string, mount = 'transit'): string {
  return `path "${mount}/decrypt/${keyName}" { capabilities = ["update"] }`;
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
