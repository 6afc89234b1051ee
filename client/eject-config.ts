import { z } from 'zod';
import type { CiphertextStoreConfig } from '../adapters/stores/ciphertext-store-factory';
import type { HttpCredentialsSourceConfig } from '../adapters/credentials/credentials-source';
import type { PortalClientConfig } from '../adapters/portal/portal-client';
import { backendEnvProblems, backendEnvSchema, toCredentialsConfig, toPortalConfig, toStoreConfigs } from '../config/backend-config';
import { loadConfig } from '../config/load-config';
import { kmsEnvProblems, kmsEnvSchema, kmsPresenceProblems, toKmsConfig, type KmsConfig } from '../config/kms-config';

const ejectEnvSchema = kmsEnvSchema.extend(backendEnvSchema.shape).extend({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
});

export interface EjectConfig {
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
 * Variables eject needs beyond the schema's own, checked on what was given so one message names
 * every missing one (the database and the caller's credentials were reported only in a second run).
 */
function ejectPresenceProblems(raw: Record<string, string>): string[] {
  const problems = kmsPresenceProblems(raw);
  if (!raw.DATABASE_URL) problems.push('DATABASE_URL is required: every retrieval of client backup shares is recorded in the company database (share_retrievals)');
  return problems;
}

/**
 * What eject retrieval needs: the same Portal, credentials source, store and database as the
 * workers, and the caller's own Vault credentials. No codec or sealing key, no Temporal.
 */
export function loadEjectConfig(env: NodeJS.ProcessEnv = process.env): EjectConfig {
  const e = loadConfig(ejectEnvSchema, env, (parsed) => [...kmsEnvProblems(parsed), ...backendEnvProblems(parsed)], ejectPresenceProblems);
  return {
    kms: toKmsConfig(e),
    portal: toPortalConfig(e),
    credentials: toCredentialsConfig(e),
    stores: toStoreConfigs(e),
    databaseUrl: e.DATABASE_URL!,
    logLevel: e.LOG_LEVEL,
  };
}
