import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { ConfigError } from '../config/config-error';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from '../config/codec-config';
import { loadConfig } from '../config/load-config';
import { temporalEnvProblems, temporalEnvSchema, toTemporalConfig, type TemporalConfig } from '../config/temporal-config';

const clientEnvSchema = temporalEnvSchema.extend(codecEnvSchema.shape);

export interface ClientConfig {
  temporal: TemporalConfig;
  codecKeys: CodecKeyRing;
}

/** What a process that starts or steers backups needs: Temporal and the payload codec keys. */
export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const e = loadConfig(clientEnvSchema, env, (parsed) => [...temporalEnvProblems(parsed), ...codecEnvProblems(parsed)]);
  return { temporal: toTemporalConfig(e), codecKeys: toCodecKeyRing(e) };
}

/** Where `npm run dev` writes the client's settings (dev/main.ts). */
export const DEV_CLIENT_ENV = join(__dirname, '..', '.stack', 'dev', 'client.env');

/**
 * loadClientConfig for the CLI: when a dev stack runs from this checkout, a missing setting comes
 * with the way to use the dev stack's settings, which a newcomer following the docs lacks.
 */
export function loadCliConfig(env: NodeJS.ProcessEnv = process.env, devClientEnv = DEV_CLIENT_ENV): ClientConfig {
  try {
    return loadClientConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError) || !existsSync(devClientEnv)) throw error;
    const file = relative(process.cwd(), devClientEnv) || devClientEnv;
    throw new ConfigError([
      ...error.problems,
      `a dev stack's settings are in ${file}: run \`npm run backup:dev -- <command>\` (it reads them), or export them first (set -a; . ${file}; set +a)`,
    ]);
  }
}
