import { z } from 'zod';
import { loadConfig } from '../config/load-config';

const collectEnvSchema = z.object({
  DATABASE_URL: z.string().trim().min(1, 'is required: the sealed release waits in the company database (eject_releases)').optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
});

export interface EjectCollectConfig {
  /** The company database, where the workers put the release sealed to the requester's key. */
  databaseUrl: string;
  logLevel: string;
}

/**
 * What `eject collect` needs: the company database only. No Vault token, KMS, Portal or Temporal:
 * the workers decrypted once the approvers approved, and only the requester's key file opens
 * what they sealed.
 */
export function loadEjectCollectConfig(env: NodeJS.ProcessEnv = process.env): EjectCollectConfig {
  const e = loadConfig(collectEnvSchema, env, () => [], (raw) => (raw.DATABASE_URL ? [] : ['DATABASE_URL is required: the sealed release waits in the company database (eject_releases)']));
  return { databaseUrl: e.DATABASE_URL!, logLevel: e.LOG_LEVEL };
}
