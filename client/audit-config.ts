import { auditEnvSchema } from '../config/audit-config';
import { envNonEmpty } from '../config/env-schema';
import { loadConfig } from '../config/load-config';
import { toVaultConfig, vaultEnvProblems, vaultEnvSchema, type VaultConfig } from '../config/vault-config';
import type { AuditChainSignerConfig } from '../adapters/vault/audit-chain-signer';

const auditCliEnvSchema = vaultEnvSchema.partial({ VAULT_ADDR: true }).extend(auditEnvSchema.shape).extend({
  DATABASE_URL: envNonEmpty.refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL').optional(),
});

export interface AuditCliConfig {
  /** The company database that holds audit_events and audit_seals (read only is enough). */
  databaseUrl: string;
  /** The auditor's Vault credentials and the signing key's name: verify needs them, list does not. */
  signer?: AuditChainSignerConfig & Pick<VaultConfig, 'auth'>;
  maxUnsealedAgeMs: number;
}

/**
 * `backup audit …`: DATABASE_URL always; for `verify` also VAULT_ADDR and the auditor's own Vault
 * credentials (VAULT_TOKEN or AppRole) with update on `transit/verify/<AUDIT_SIGNING_KEY>`.
 * Every problem is reported at once.
 */
export function loadAuditCliConfig(needsVault: boolean, env: NodeJS.ProcessEnv = process.env): AuditCliConfig {
  const e = loadConfig(auditCliEnvSchema, env, (parsed) => {
    const problems: string[] = [];
    if (!parsed.DATABASE_URL) problems.push('DATABASE_URL is required: the audit trail is in the company database (audit_events, audit_seals)');
    if (needsVault) {
      if (!parsed.VAULT_ADDR) problems.push('VAULT_ADDR is required to check the seals: the Vault that holds the audit signing key');
      problems.push(...vaultEnvProblems(parsed));
    }
    return problems;
  });
  return {
    databaseUrl: e.DATABASE_URL!,
    ...(needsVault ? { signer: { ...toVaultConfig({ ...e, VAULT_ADDR: e.VAULT_ADDR! }), keyName: e.AUDIT_SIGNING_KEY } } : {}),
    maxUnsealedAgeMs: e.AUDIT_MAX_UNSEALED_AGE_MS,
  };
}
