import { z } from 'zod';
import type { CodecKeyRing } from '../codec/encryption-codec';
import { codecEnvProblems, codecEnvSchema, toCodecKeyRing } from '../config/codec-config';
import { envInt, envNonEmpty, envUrl } from '../config/env-schema';
import { approvalEnvSchema } from '../config/approval-config';
import { toVaultConfig, vaultEnvProblems, type VaultConfig } from '../config/vault-config';
import { isOperatorName } from '../domain/operator-action';
import { loadConfig } from '../config/load-config';
import { temporalEnvProblems, temporalEnvSchema, toTemporalConfig, type TemporalConfig } from '../config/temporal-config';

const apiEnvSchema = temporalEnvSchema.extend(codecEnvSchema.shape).extend({
  API_HOST: envNonEmpty.default('127.0.0.1'),
  API_PORT: envInt(1, 65_535).default(8080),
  API_TOKENS: z
    .string({ error: 'is required: the bearer token(s) backends and operators present, comma-separated (name:token names the identity)' })
    .refine((value) => value.split(',').every((entry) => parseApiToken(entry).token.length >= 24), 'each token must be at least 24 characters (e.g. openssl rand -base64 32)')
    .refine(
      (value) => value.split(',').every((entry) => !entry.includes(':') || isOperatorName(parseApiToken(entry).name)),
      'a named token is name:token, the name of [a-z0-9._-] (it is the operator identity the workers verify)',
    ),
  API_BODY_LIMIT_BYTES: envInt(1_024, 4 * 1024 * 1024).default(256 * 1024),
  // The API's own Vault credentials, which may sign only with API_SIGNING_KEY (for its named tokens' operator acts).
  VAULT_ADDR: envUrl.optional(),
  VAULT_TOKEN: envNonEmpty.optional(),
  VAULT_ROLE_ID: envNonEmpty.optional(),
  VAULT_SECRET_ID: envNonEmpty.optional(),
  VAULT_APPROLE_MOUNT: envNonEmpty.default('approle'),
  VAULT_NAMESPACE: envNonEmpty.optional(),
  VAULT_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  OPERATOR_SIGNING_MOUNT: approvalEnvSchema.shape.OPERATOR_SIGNING_MOUNT,
  API_SIGNING_KEY: approvalEnvSchema.shape.API_SIGNING_KEY,
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
});

/** A bearer token; a named one (`name:token`) carries that name as the operator identity of the acts it asks for. */
export interface ApiToken {
  name?: string;
  token: string;
}

export interface ApiConfig {
  host: string;
  port: number;
  tokens: ApiToken[];
  /** The API's Vault and key to sign its named tokens' operator acts; absent: those acts are refused. */
  signing?: { vault: VaultConfig; keyName: string; mount: string };
  bodyLimitBytes: number;
  temporal: TemporalConfig;
  codecKeys: CodecKeyRing;
  logLevel: string;
}

/** The HTTP API's configuration: Temporal, the payload codec (it is a client), where to listen, its bearer tokens. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  // Tokens are always required, on loopback too; TLS belongs on the proxy in front (docs/configuration.md).
  const e = loadConfig(apiEnvSchema, env, (parsed) => [
    ...temporalEnvProblems(parsed),
    ...codecEnvProblems(parsed),
    ...(parsed.VAULT_ADDR ? vaultEnvProblems(parsed) : []),
  ]);
  return {
    host: e.API_HOST,
    port: e.API_PORT,
    tokens: e.API_TOKENS.split(',').map(parseApiToken),
    ...(e.VAULT_ADDR
      ? { signing: { vault: toVaultConfig({ ...e, VAULT_ADDR: e.VAULT_ADDR, VAULT_TRANSIT_MOUNT: e.OPERATOR_SIGNING_MOUNT, VAULT_TRANSIT_KEY: e.API_SIGNING_KEY }), keyName: e.API_SIGNING_KEY, mount: e.OPERATOR_SIGNING_MOUNT } }
      : {}),
    bodyLimitBytes: e.API_BODY_LIMIT_BYTES,
    temporal: toTemporalConfig(e),
    codecKeys: toCodecKeyRing(e),
    logLevel: e.LOG_LEVEL,
  };
}

/** `name:token` or a bare `token` (no identity: it may start and read backups, not act as an operator). */
export function parseApiToken(entry: string): ApiToken {
  const trimmed = entry.trim();
  const colon = trimmed.indexOf(':');
  return colon < 0 ? { token: trimmed } : { name: trimmed.slice(0, colon), token: trimmed.slice(colon + 1) };
}
