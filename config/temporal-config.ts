import { readFileSync } from 'node:fs';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { z } from 'zod';
import { BACKUP_TASK_QUEUE_DEFAULT } from '../contracts/backup-wallet-api';
import { envBool, envHostPort, envNonEmpty } from './env-schema';

/**
 * Temporal connection settings are Temporal's own (`@temporalio/envconfig`): a profile from the
 * TOML client config file (`TEMPORAL_CONFIG_FILE`, default `~/.config/temporalio/temporal.toml`,
 * profile `TEMPORAL_PROFILE`), overridden by the standard `TEMPORAL_*` variables. This schema only
 * validates those variables (so one error lists every bad one) and adds the service's task queue.
 */
export const temporalEnvSchema = z.object({
  TEMPORAL_ADDRESS: envHostPort.optional(),
  TEMPORAL_NAMESPACE: envNonEmpty.optional(),
  TEMPORAL_TASK_QUEUE: envNonEmpty.default(BACKUP_TASK_QUEUE_DEFAULT),
  TEMPORAL_PROFILE: envNonEmpty.optional(),
  TEMPORAL_CONFIG_FILE: envNonEmpty.optional(),
  TEMPORAL_API_KEY: envNonEmpty.optional(),
  TEMPORAL_TLS: envBool.optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_SERVER_NAME: envNonEmpty.optional(),
  // The names this service used before it read Temporal's standard ones: refused with the new name.
  TEMPORAL_TLS_CERT_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_KEY_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_CA_PATH: envNonEmpty.optional(),
});

export type TemporalEnv = z.infer<typeof temporalEnvSchema>;

const RENAMED = {
  TEMPORAL_TLS_CERT_PATH: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  TEMPORAL_TLS_KEY_PATH: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  TEMPORAL_TLS_CA_PATH: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
} as const;

const DEFAULT_ADDRESS = 'localhost:7233';
const DEFAULT_NAMESPACE = 'default';

/** What `Connection.connect` and `NativeConnection.connect` take. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: boolean | { serverNameOverride?: string; serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } };
  apiKey?: string;
  metadata?: Record<string, string>;
}

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  connection: TemporalConnectionOptions;
}

/** Cross-field checks zod cannot express per variable, and the profile's own problems; never throws. */
export function temporalEnvProblems(env: TemporalEnv): string[] {
  const problems: string[] = [];
  for (const [old, current] of Object.entries(RENAMED)) {
    if (env[old as keyof typeof RENAMED]) problems.push(`${old} is now ${current} (Temporal's standard variable): rename it`);
  }
  if (Boolean(env.TEMPORAL_TLS_CLIENT_CERT_PATH) !== Boolean(env.TEMPORAL_TLS_CLIENT_KEY_PATH)) {
    problems.push('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH must be set together (mTLS client certificate and key)');
  }
  for (const name of ['TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH', 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_CONFIG_FILE'] as const) {
    const path = env[name];
    if (path) {
      try {
        readFileSync(path);
      } catch {
        problems.push(`${name}: cannot read file ${path}`);
      }
    }
  }
  if (problems.length === 0) {
    try {
      resolve(env);
    } catch (error) {
      problems.push(`the Temporal client profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE): ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return problems;
}

export function toTemporalConfig(env: TemporalEnv): TemporalConfig {
  const { connectionOptions, namespace } = resolve(env);
  const address = connectionOptions.address ?? DEFAULT_ADDRESS;
  const connection: TemporalConnectionOptions = {
    address,
    ...(connectionOptions.tls !== undefined ? { tls: connectionOptions.tls as TemporalConnectionOptions['tls'] } : {}),
    ...(typeof connectionOptions.apiKey === 'string' ? { apiKey: connectionOptions.apiKey } : {}),
    ...(connectionOptions.metadata && Object.keys(connectionOptions.metadata).length > 0
      ? { metadata: connectionOptions.metadata as Record<string, string> }
      : {}),
  };
  return { address, namespace: namespace ?? DEFAULT_NAMESPACE, taskQueue: env.TEMPORAL_TASK_QUEUE, connection };
}

/** The profile (file, then variables), resolved by @temporalio/envconfig from the validated variables only. */
function resolve(env: TemporalEnv) {
  const variables = Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string | boolean] => entry[1] !== undefined && entry[0] !== 'TEMPORAL_TASK_QUEUE'),
  );
  return loadClientConnectConfig({ overrideEnvVars: Object.fromEntries(Object.entries(variables).map(([key, value]) => [key, String(value)])) });
}

/** Options for both `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export function connectionOptions(config: TemporalConfig): TemporalConnectionOptions {
  return config.connection;
}
