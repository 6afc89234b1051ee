import type { VaultTransit } from '../activities/vault-transit';
import { ConfigError } from '../config/config-error';
import { VaultPermissionError, VaultRequestError } from '../domain/errors';

/**
 * Checks at start that the configured Transit key exists and can bind ciphertexts to a context.
 * Vault creates a missing key on the first encrypt for a token allowed to, so a typo in
 * VAULT_TRANSIT_KEY would otherwise start encrypting backups under a new, unintended key.
 * An unreachable Vault or a token without `read` on the key only warns: outages are survivable.
 */
export async function checkTransitKey(
  transit: VaultTransit,
  names: { mount: string; keyName: string },
  warn: (message: string) => void,
): Promise<void> {
  let key;
  try {
    key = await transit.describeKey();
  } catch (error) {
    if (error instanceof VaultRequestError && /404/.test(error.message)) {
      throw new ConfigError([
        `VAULT_TRANSIT_KEY: there is no Transit key "${names.keyName}" at mount "${names.mount}" (VAULT_TRANSIT_MOUNT); create it with type=aes256-gcm96 derived=true`,
      ]);
    }
    if (error instanceof VaultPermissionError) {
      warn(`cannot verify Transit key ${names.keyName}: grant "read" on ${names.mount}/keys/${names.keyName} to check it at start`);
      return;
    }
    warn(`cannot verify Transit key ${names.keyName} now (${(error as Error).message}); backups will wait for Vault`);
    return;
  }
  const problems: string[] = [];
  if (key.type !== 'aes256-gcm96') problems.push(`VAULT_TRANSIT_KEY: key "${names.keyName}" is ${key.type}, not aes256-gcm96`);
  if (!key.derived) problems.push(`VAULT_TRANSIT_KEY: key "${names.keyName}" is not derived (derived=true is needed to bind ciphertexts to user and pair)`);
  if (problems.length > 0) throw new ConfigError(problems);
}
