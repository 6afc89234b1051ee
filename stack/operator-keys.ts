import nodeVault from 'node-vault';
import { operatorSigningPolicy } from './vault-policies';

/**
 * Seeds signing identities in a (dev or test) Vault: for each name an ed25519 Transit key and a
 * token whose only power is to sign with that key. Returns each name's token. In production the
 * keys and policies are the company's (docs/operations.md, "Operators and approvals").
 */
export async function seedSigningKeys(addr: string, rootToken: string, keyNames: Record<string, string>, mount = 'transit'): Promise<Record<string, string>> {
  const admin = nodeVault({ endpoint: addr, token: rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  const tokens: Record<string, string> = {};
  for (const [name, keyName] of Object.entries(keyNames)) {
    // Creating an existing key changes nothing (Vault answers it as an update of no fields).
    await admin.write(`${mount}/keys/${keyName}`, { type: 'ed25519' });
    await admin.addPolicy({ name: `sign-${keyName}`, rules: operatorSigningPolicy(keyName, mount) });
    const created = (await admin.write('auth/token/create', { policies: [`sign-${keyName}`], ttl: '24h', display_name: name })) as { auth: { client_token: string } };
    tokens[name] = created.auth.client_token;
  }
  return tokens;
}

/** Operators' keys are `operator-<name>`. */
export function operatorKeyNames(names: readonly string[], prefix = 'operator-'): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, `${prefix}${name}`]));
}
