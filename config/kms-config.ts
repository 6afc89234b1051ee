import { z } from 'zod';
import type { AwsKmsConfig } from '../adapters/kms/aws-kms-envelope';
import type { KmsProviderKind } from '../adapters/kms/kms-provider';
import { envInt, envNonEmpty, envUrl } from './env-schema';
import { toVaultConfig, vaultEnvProblems, vaultEnvSchema, type VaultConfig } from './vault-config';

/**
 * The KMS every process that encrypts or decrypts shares uses (KMS_PROVIDER): Vault Transit, with
 * the VAULT_* settings, or AWS KMS envelope encryption, with the AWS_* settings. AWS credentials
 * come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set, else from
 * the AWS SDK's default chain (profile, instance or task role).
 */
export const kmsEnvSchema = vaultEnvSchema.extend({
  KMS_PROVIDER: z.enum(['vault-transit', 'aws-kms'], { error: 'must be vault-transit or aws-kms' }).default('vault-transit'),
  VAULT_ADDR: envUrl.optional(),
  AWS_REGION: z.string().trim().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like eu-west-2').optional(),
  AWS_KMS_ENDPOINT: envUrl.optional(),
  AWS_KMS_KEY_ALIAS: z
    .string()
    .trim()
    .regex(/^alias\/[A-Za-z0-9/_-]+$/, 'must be a KMS alias like alias/mpc-backup (its versions are alias/mpc-backup/v1, /v2, …)')
    .refine((value) => !value.startsWith('alias/aws/'), 'must not be an AWS-managed alias (alias/aws/…)')
    .default('alias/mpc-backup'),
  AWS_KMS_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  AWS_ACCESS_KEY_ID: envNonEmpty.optional(),
  AWS_SECRET_ACCESS_KEY: envNonEmpty.optional(),
  AWS_SESSION_TOKEN: envNonEmpty.optional(),
});

export type KmsEnv = z.infer<typeof kmsEnvSchema>;

export type KmsConfig = { provider: 'vault-transit'; vault: VaultConfig } | { provider: 'aws-kms'; aws: AwsKmsConfig };

/** The variables each provider requires, checked on the environment as given (loadConfig's presence checks). */
export function kmsPresenceProblems(raw: Record<string, string>): string[] {
  if ((raw.KMS_PROVIDER ?? 'vault-transit').trim() === 'aws-kms') return raw.AWS_REGION ? [] : ['AWS_REGION is required when KMS_PROVIDER=aws-kms'];
  // The credentials too, so a missing token is named beside a missing address, not in a second run.
  return [...(raw.VAULT_ADDR ? [] : ['VAULT_ADDR is required when KMS_PROVIDER=vault-transit (the default)']), ...vaultEnvProblems(raw)];
}

/** Cross-checks of a parsed KMS environment (presence of the required variables: kmsPresenceProblems). */
export function kmsEnvProblems(env: KmsEnv): string[] {
  const problems: string[] = [];
  if (env.KMS_PROVIDER === 'vault-transit') {
    problems.push(...vaultEnvProblems(env));
  } else {
    if (Boolean(env.AWS_ACCESS_KEY_ID) !== Boolean(env.AWS_SECRET_ACCESS_KEY)) {
      problems.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither: the AWS SDK default chain)');
    }
    if (env.AWS_SESSION_TOKEN && !env.AWS_ACCESS_KEY_ID) problems.push('AWS_SESSION_TOKEN needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  return problems;
}

/** The KMS's request timeout, whichever provider (each must stay under the 2-minute activity timeout). */
export function kmsTimeoutMs(env: KmsEnv): number {
  return env.KMS_PROVIDER === 'aws-kms' ? env.AWS_KMS_TIMEOUT_MS : env.VAULT_TIMEOUT_MS;
}

export function toKmsConfig(env: KmsEnv): KmsConfig {
  if (env.KMS_PROVIDER === 'vault-transit') return { provider: 'vault-transit', vault: toVaultConfig({ ...env, VAULT_ADDR: env.VAULT_ADDR ?? '' }) };
  return {
    provider: 'aws-kms',
    aws: {
      region: env.AWS_REGION!,
      keyAlias: env.AWS_KMS_KEY_ALIAS,
      timeoutMs: env.AWS_KMS_TIMEOUT_MS,
      ...(env.AWS_KMS_ENDPOINT ? { endpoint: env.AWS_KMS_ENDPOINT } : {}),
      ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) } }
        : {}),
    },
  };
}

export type { KmsProviderKind };
