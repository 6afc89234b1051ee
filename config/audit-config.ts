import { z } from 'zod';
import type { AuditChainSignerConfig } from '../adapters/vault/audit-chain-signer';
import { envInt } from './env-schema';
import type { KmsConfig } from './kms-config';
import type { VaultConfig } from './vault-config';

/** The audit trail's seals and checks (docs/operations.md, "Verifying the audit trail"). */
export const auditEnvSchema = z.object({
  AUDIT_SIGNING_KEY: z.string().trim().regex(/^[A-Za-z0-9_.-]+$/, 'must be a Transit key name').default('audit-chain'),
  AUDIT_SEAL_INTERVAL_MS: envInt(1_000, 86_400_000).default(60_000),
  AUDIT_VERIFY_INTERVAL_MS: envInt(1_000, 86_400_000).default(300_000),
  AUDIT_MAX_UNSEALED_AGE_MS: envInt(2_000, 7 * 86_400_000).default(900_000),
});

export type AuditEnv = z.infer<typeof auditEnvSchema>;

export interface AuditConfig {
  /** The Vault Transit signing key and the Vault credentials that sign with it; absent without Vault (KMS_PROVIDER=aws-kms). */
  signer?: AuditChainSignerConfig & Pick<VaultConfig, 'auth'>;
  sealIntervalMs: number;
  verifyIntervalMs: number;
  maxUnsealedAgeMs: number;
}

export function auditEnvProblems(env: AuditEnv): string[] {
  if (env.AUDIT_MAX_UNSEALED_AGE_MS > 2 * env.AUDIT_SEAL_INTERVAL_MS) return [];
  return ['AUDIT_MAX_UNSEALED_AGE_MS must be more than twice AUDIT_SEAL_INTERVAL_MS, or a healthy chain would fail verification between two seals'];
}

/** The Vault of the KMS signs the seals, with the key AUDIT_SIGNING_KEY on the same Transit mount. */
export function toAuditConfig(env: AuditEnv, kms: KmsConfig): AuditConfig {
  return {
    ...(kms.provider === 'vault-transit' ? { signer: { ...kms.vault, keyName: env.AUDIT_SIGNING_KEY } } : {}),
    sealIntervalMs: env.AUDIT_SEAL_INTERVAL_MS,
    verifyIntervalMs: env.AUDIT_VERIFY_INTERVAL_MS,
    maxUnsealedAgeMs: env.AUDIT_MAX_UNSEALED_AGE_MS,
  };
}
