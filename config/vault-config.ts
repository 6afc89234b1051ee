import { z } from 'zod';
import type { VaultTransitConfig } from '../adapters/vault/vault-transit';
import { envInt, envNonEmpty, envUrl } from './env-schema';

/** Vault (or OpenBao) Transit settings, shared by every process that encrypts or decrypts. */
export const vaultEnvSchema = z.object({
  VAULT_ADDR: envUrl,
  VAULT_TOKEN: envNonEmpty.optional(),
  VAULT_ROLE_ID: envNonEmpty.optional(),
  VAULT_SECRET_ID: envNonEmpty.optional(),
  VAULT_APPROLE_MOUNT: envNonEmpty.default('approle'),
  VAULT_NAMESPACE: envNonEmpty.optional(),
  VAULT_TRANSIT_MOUNT: z.string().trim().regex(/^[A-Za-z0-9_\-/]+$/, 'must be a mount path like transit').default('transit'),
  VAULT_TRANSIT_KEY: z.string().trim().regex(/^[A-Za-z0-9_.-]+$/, 'must be a Transit key name').default('mpc-backup'),
  VAULT_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
});

export type VaultEnv = z.infer<typeof vaultEnvSchema>;

export type VaultConfig = VaultTransitConfig & {
  auth: { kind: 'token'; token: string } | { kind: 'approle'; roleId: string; secretId: string; mountPoint: string };
};

/** The credentials' problems; reads only the three credential variables, so raw (unparsed) variables do too. */
export function vaultEnvProblems(env: Partial<Pick<VaultEnv, 'VAULT_TOKEN' | 'VAULT_ROLE_ID' | 'VAULT_SECRET_ID'>>): string[] {
  const problems: string[] = [];
  const appRole = Boolean(env.VAULT_ROLE_ID) || Boolean(env.VAULT_SECRET_ID);
  if (!env.VAULT_TOKEN && !appRole) problems.push('VAULT_TOKEN is required (or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole login)');
  if (appRole && !(env.VAULT_ROLE_ID && env.VAULT_SECRET_ID)) problems.push('VAULT_ROLE_ID and VAULT_SECRET_ID must be set together');
  return problems;
}

export function toVaultConfig(env: VaultEnv): VaultConfig {
  return {
    endpoint: env.VAULT_ADDR,
    mount: env.VAULT_TRANSIT_MOUNT,
    keyName: env.VAULT_TRANSIT_KEY,
    timeoutMs: env.VAULT_TIMEOUT_MS,
    ...(env.VAULT_NAMESPACE ? { namespace: env.VAULT_NAMESPACE } : {}),
    auth: env.VAULT_ROLE_ID
      ? { kind: 'approle', roleId: env.VAULT_ROLE_ID, secretId: env.VAULT_SECRET_ID!, mountPoint: env.VAULT_APPROLE_MOUNT }
      : { kind: 'token', token: env.VAULT_TOKEN! },
  };
}
