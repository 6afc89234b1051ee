import type { CodecKeyRing } from '../codec/encryption-codec';
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
