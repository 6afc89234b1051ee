import { isIP } from 'node:net';
import { z } from 'zod';
import { envBool, envInt, envNonEmpty } from '../config/env-schema';
import { loadConfig } from '../config/load-config';
import { kmsEnvProblems, kmsEnvSchema, kmsPresenceProblems, toKmsConfig, type KmsConfig } from '../config/kms-config';
import { envListenAddress, type ListenAddress } from '../metrics/listen-address';

/** Portal waits 10 s for the webhook; the whole request must be answered before that. */
export const PORTAL_WEBHOOK_BUDGET_MS = 10_000;
/** Portal's documented source addresses (shared/portal-api.md), for WEBHOOK_ALLOWED_SOURCE_IPS in production. */
export const PORTAL_SOURCE_IPS = ['35.203.150.117', '104.155.171.139', '35.185.20.23'] as const;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

const webhookEnvSchema = kmsEnvSchema.extend({
  WEBHOOK_HOST: envNonEmpty.default('127.0.0.1'),
  WEBHOOK_PORT: envInt(1, 65_535).default(4300),
  WEBHOOK_SECRETS: z
    .string({ error: 'is required: the X-Webhook-Secret value(s) set on Portal’s Webhooks page, comma-separated during a rotation' })
    .refine((value) => value.split(',').every((secret) => secret.trim().length >= 16), 'each secret must be at least 16 characters'),
  WEBHOOK_ALLOWED_SOURCE_IPS: z
    .string()
    .refine((value) => value.split(',').every((ip) => isIP(ip.trim()) !== 0), 'must be comma-separated IP addresses, e.g. Portal’s documented ones')
    .optional(),
  WEBHOOK_SOURCE_CHECKED_BY_PROXY: envBool.default(false),
  WEBHOOK_DEADLINE_MS: envInt(500, PORTAL_WEBHOOK_BUDGET_MS - 500).default(8_000),
  WEBHOOK_BODY_LIMIT_BYTES: envInt(1_024, 1024 * 1024).default(64 * 1024),
  DATABASE_URL: envNonEmpty.refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL'),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error'], { error: 'must be trace, debug, info, warn or error' }).default('info'),
  WEBHOOK_METRICS_ADDRESS: envListenAddress.optional(),
});

export interface WebhookConfig {
  host: string;
  port: number;
  secrets: string[];
  allowedSourceIps?: string[];
  deadlineMs: number;
  bodyLimitBytes: number;
  databaseUrl: string;
  /** The same KMS and key as the workers (KMS_PROVIDER), which decrypt the custodian shares. */
  kms: KmsConfig;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** Where GET /metrics is served (WEBHOOK_METRICS_ADDRESS): off when unset, never on the webhook's own port. */
  metricsAddress?: ListenAddress;
}

/** Reads and validates the webhook's configuration; one ConfigError lists every problem. */
export function loadWebhookConfig(env: NodeJS.ProcessEnv = process.env): WebhookConfig {
  const e = loadConfig(webhookEnvSchema, env, (parsed) => [
    ...kmsEnvProblems(parsed),
    ...(parsed.WEBHOOK_METRICS_ADDRESS?.port === parsed.WEBHOOK_PORT ? ['WEBHOOK_METRICS_ADDRESS must use another port than WEBHOOK_PORT (metrics stay off the port Portal calls)'] : []),
    ...(!LOOPBACK.test(parsed.WEBHOOK_HOST) && !parsed.WEBHOOK_ALLOWED_SOURCE_IPS && !parsed.WEBHOOK_SOURCE_CHECKED_BY_PROXY
      ? [
          `WEBHOOK_HOST ${parsed.WEBHOOK_HOST} is not loopback, and /backup/fetch hands out custodian shares to any holder of the secret: ` +
            `set WEBHOOK_ALLOWED_SOURCE_IPS (Portal's addresses: ${PORTAL_SOURCE_IPS.join(',')}), or WEBHOOK_SOURCE_CHECKED_BY_PROXY=true when a proxy in front enforces them`,
        ]
      : []),
  ], kmsPresenceProblems);
  return {
    host: e.WEBHOOK_HOST,
    port: e.WEBHOOK_PORT,
    secrets: e.WEBHOOK_SECRETS.split(',').map((secret) => secret.trim()),
    ...(e.WEBHOOK_ALLOWED_SOURCE_IPS ? { allowedSourceIps: e.WEBHOOK_ALLOWED_SOURCE_IPS.split(',').map((ip) => ip.trim()) } : {}),
    deadlineMs: e.WEBHOOK_DEADLINE_MS,
    bodyLimitBytes: e.WEBHOOK_BODY_LIMIT_BYTES,
    databaseUrl: e.DATABASE_URL,
    kms: toKmsConfig(e),
    logLevel: e.LOG_LEVEL,
    ...(e.WEBHOOK_METRICS_ADDRESS ? { metricsAddress: e.WEBHOOK_METRICS_ADDRESS } : {}),
  };
}
