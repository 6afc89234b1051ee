import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BACKUP_TASK_QUEUE_DEFAULT } from '../workflows/backup-wallet-api';
import { envBool, envHostPort, envNonEmpty } from './env-schema';

export const temporalEnvSchema = z.object({
  TEMPORAL_ADDRESS: envHostPort.default('localhost:7233'),
  TEMPORAL_NAMESPACE: envNonEmpty.default('default'),
  TEMPORAL_TASK_QUEUE: envNonEmpty.default(BACKUP_TASK_QUEUE_DEFAULT),
  TEMPORAL_TLS: envBool.optional(),
  TEMPORAL_TLS_CERT_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_KEY_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_CA_PATH: envNonEmpty.optional(),
  TEMPORAL_TLS_SERVER_NAME: envNonEmpty.optional(),
  TEMPORAL_API_KEY: envNonEmpty.optional(),
});

export type TemporalEnv = z.infer<typeof temporalEnvSchema>;

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?: {
    clientCertPair?: { crt: Buffer; key: Buffer };
    serverRootCACertificate?: Buffer;
    serverNameOverride?: string;
  };
  apiKey?: string;
}

/** Cross-field checks zod cannot express per variable; returns problems instead of throwing. */
export function temporalEnvProblems(env: TemporalEnv): string[] {
  const problems: string[] = [];
  if (Boolean(env.TEMPORAL_TLS_CERT_PATH) !== Boolean(env.TEMPORAL_TLS_KEY_PATH)) {
    problems.push('TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together (mTLS client certificate and key)');
  }
  for (const name of ['TEMPORAL_TLS_CERT_PATH', 'TEMPORAL_TLS_KEY_PATH', 'TEMPORAL_TLS_CA_PATH'] as const) {
    const path = env[name];
    if (path) {
      try {
        readFileSync(path);
      } catch {
        problems.push(`${name}: cannot read file ${path}`);
      }
    }
  }
  return problems;
}

export function toTemporalConfig(env: TemporalEnv): TemporalConfig {
  const useTls =
    env.TEMPORAL_TLS ?? Boolean(env.TEMPORAL_TLS_CERT_PATH || env.TEMPORAL_TLS_CA_PATH || env.TEMPORAL_API_KEY);
  const config: TemporalConfig = {
    address: env.TEMPORAL_ADDRESS,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: env.TEMPORAL_TASK_QUEUE,
  };
  if (useTls) {
    config.tls = {
      ...(env.TEMPORAL_TLS_CERT_PATH && env.TEMPORAL_TLS_KEY_PATH
        ? { clientCertPair: { crt: readFileSync(env.TEMPORAL_TLS_CERT_PATH), key: readFileSync(env.TEMPORAL_TLS_KEY_PATH) } }
        : {}),
      ...(env.TEMPORAL_TLS_CA_PATH ? { serverRootCACertificate: readFileSync(env.TEMPORAL_TLS_CA_PATH) } : {}),
      ...(env.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME } : {}),
    };
  }
  if (env.TEMPORAL_API_KEY) config.apiKey = env.TEMPORAL_API_KEY;
  return config;
}

/** Options for both `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export function connectionOptions(config: TemporalConfig) {
  return {
    address: config.address,
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.apiKey ? { apiKey: config.apiKey } : {}),
  };
}
