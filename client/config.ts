import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { ConfigError } from '../config/config-error';
import { devStackFile } from '../config/dev-stack-files';
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

/**
 * loadClientConfig for the CLI: when a dev stack runs from this checkout, a missing setting comes
 * with the way to use the dev stack's settings, which a newcomer following the docs lacks.
 */
export function loadCliConfig(env: NodeJS.ProcessEnv = process.env, devClientEnv = devStackFile('clientEnv', env)): ClientConfig {
  return withDevStackHint(() => loadClientConfig(env), devClientEnv, '`npm run backup:dev -- <command>` (it reads them)');
}

/**
 * Runs `load`; a ConfigError, when a dev stack's settings exist, gains one more line saying how to
 * use them (`howToRun`: the command that reads them).
 */
export function withDevStackHint<T>(load: () => T, devClientEnv: string, howToRun: string): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError) || !existsSync(devClientEnv)) throw error;
    const fromHere = relative(process.cwd(), devClientEnv);
    const file = fromHere && !fromHere.startsWith('..') ? fromHere : devClientEnv;
    throw new ConfigError([...error.problems, `a dev stack's settings are in ${file}: run ${howToRun}, or export them first (set -a; . ${file}; set +a)`]);
  }
}
