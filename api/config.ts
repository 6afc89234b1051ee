import { z } from 'zod';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from '../config/codec-config';
import { envInt, envNonEmpty } from '../config/env-schema';
import { loadConfig } from '../config/load-config';
import { temporalEnvProblems, temporalEnvSchema, toTemporalConfig, type TemporalConfig } from '../config/temporal-config';

const apiEnvSchema = temporalEnvSchema.extend(codecEnvSchema.shape).extend({
  API_HOST: envNonEmpty.default('127.0.0.1'),
  API_PORT: envInt(1, 65_535).default(8080),
  API_TOKENS: z
    .string({ error: 'is required: the bearer token(s) backends present, comma-separated during a rotation' })
    .refine((value) => value.split(',').every((token) => token.trim().length >= 24), 'each token must be at least 24 characters (e.g. openssl rand -base64 32)'),
  API_BODY_LIMIT_BYTES: envInt(1_024, 4 * 1024 * 1024).default(256 * 1024),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
});

export interface ApiConfig {
  host: string;
  port: number;
  tokens: string[];
  bodyLimitBytes: number;
  temporal: TemporalConfig;
  codecKeys: CodecKeyRing;
  logLevel: string;
}

/** The HTTP API's configuration: Temporal, the payload codec (it is a client), where to listen, its bearer tokens. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  // Tokens are always required, on loopback too; TLS belongs on the proxy in front (docs/configuration.md).
  const e = loadConfig(apiEnvSchema, env, (parsed) => [...temporalEnvProblems(parsed), ...codecEnvProblems(parsed)]);
  return {
    host: e.API_HOST,
    port: e.API_PORT,
    tokens: e.API_TOKENS.split(',').map((token) => token.trim()),
    bodyLimitBytes: e.API_BODY_LIMIT_BYTES,
    temporal: toTemporalConfig(e),
    codecKeys: toCodecKeyRing(e),
    logLevel: e.LOG_LEVEL,
  };
}
