import { z } from 'zod';
import type { CiphertextStoreConfig } from '../adapters/stores/ciphertext-store-factory';
import type { HttpCredentialsSourceConfig } from '../adapters/credentials/credentials-source';
import type { PortalClientConfig } from '../adapters/portal/portal-client';
import { backendEnvProblems, backendEnvSchema, toCredentialsConfig, toPortalConfig, toStoreConfigs } from '../config/backend-config';
import { loadConfig } from '../config/load-config';
import { kmsEnvProblems, kmsEnvSchema, kmsPresenceProblems, toKmsConfig, type KmsConfig } from '../config/kms-config';

const copyRepairEnvSchema = kmsEnvSchema.extend(backendEnvSchema.shape).extend({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
});

export interface CopyRepairConfig {
  /** The KMS with the caller's own credentials (VAULT_TOKEN or AppRole; AWS credentials): its policy must allow the decrypt. */
  kms: KmsConfig;
  portal: PortalClientConfig;
  credentials: HttpCredentialsSourceConfig;
  /** Every store that keeps a copy, the primary first: retrieval uses the first copy that verifies. */
  stores: CiphertextStoreConfig[];
  /** The company database, which keeps the audit record of every retrieval. */
  databaseUrl: string;
  logLevel: string;
}

/**
 * Variables copy repair needs beyond the schema's own, checked on what was given so one message names
 * every missing one (the database and the caller's credentials were reported only in a second run).
 */
function copyRepairPresenceProblems(raw: Record<string, string>): string[] {
  const problems = kmsPresenceProblems(raw);
  if (!raw.DATABASE_URL) problems.push('DATABASE_URL is required: every retrieval of client backup shares is recorded in the company database (share_retrievals)');
  return problems;
}

/**
 * What `backup copies repair` needs: the same Portal, credentials source, stores and database as
 * the workers, and KMS credentials that may decrypt (it decrypt-verifies the copy it copies from).
 * Run it as a platform job with a service identity, not as a person: since eject is under the
 * two-person rule, no person keeps the decrypt. No codec or sealing key, no Temporal.
 */
export function loadCopyRepairConfig(env: NodeJS.ProcessEnv = process.env): CopyRepairConfig {
  const e = loadConfig(copyRepairEnvSchema, env, (parsed) => [...kmsEnvProblems(parsed), ...backendEnvProblems(parsed)], copyRepairPresenceProblems);
  return {
    kms: toKmsConfig(e),
    portal: toPortalConfig(e),
    credentials: toCredentialsConfig(e),
    stores: toStoreConfigs(e),
    databaseUrl: e.DATABASE_URL!,
    logLevel: e.LOG_LEVEL,
  };
}
