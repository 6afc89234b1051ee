import { z } from 'zod';
import type { CiphertextStoreConfig } from '../adapters/stores/ciphertext-store-factory';
import type { HttpCredentialsSourceConfig } from '../adapters/credentials/credentials-source';
import type { PortalClientConfig } from '../adapters/portal/portal-client';
import { envBool, envHeader, envInt, envNonEmpty, envUrl, envUrlTemplate, toHeader } from './env-schema';

/**
 * What every process that reads a user's backup needs besides Vault: Portal, the company's
 * credentials source, the ciphertext store and the company database. Shared by the workers and by
 * eject retrieval (which runs in the caller's process, not in a workflow).
 */
export const backendEnvSchema = z.object({
  PORTAL_ENCLAVE_URL: envUrl.default('https://mpc-client.portalhq.io'),
  PORTAL_API_URL: envUrl.default('https://api.portalhq.io'),
  PORTAL_TIMEOUT_MS: envInt(100, 120_000).default(30_000),
  PORTAL_STORE_METHOD: z.enum(['POST', 'PATCH'], { error: 'must be POST or PATCH' }).default('POST'),
  PORTAL_MAX_RESPONSE_BYTES: envInt(1024, 64 * 1024 * 1024).default(1024 * 1024),
  CREDENTIALS_URL: envUrlTemplate,
  CREDENTIALS_AUTH_HEADER: envHeader.optional(),
  CREDENTIALS_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  CIPHERTEXT_STORE: z.enum(['portal', 'postgres', 'http'], { error: 'must be portal, postgres or http' }).default('portal'),
  DATABASE_URL: envNonEmpty.refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL').optional(),
  CIPHERTEXT_HTTP_WRITE_URL: envUrlTemplate.optional(),
  CIPHERTEXT_HTTP_READ_URL: envUrlTemplate.optional(),
  CIPHERTEXT_HTTP_AUTH_HEADER: envHeader.optional(),
  CIPHERTEXT_HTTP_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  CIPHERTEXT_HTTP_ONE_RECORD_PER_USER: envBool.default(false),
});

export type BackendEnv = z.infer<typeof backendEnvSchema>;

export function backendEnvProblems(parsed: BackendEnv): string[] {
  const problems: string[] = [];
  if (parsed.CIPHERTEXT_STORE === 'postgres' && !parsed.DATABASE_URL) {
    problems.push('DATABASE_URL is required when CIPHERTEXT_STORE=postgres: the company database, postgres://user:password@host:port/database');
  }
  if (parsed.CIPHERTEXT_STORE === 'http' && !parsed.CIPHERTEXT_HTTP_WRITE_URL) {
    problems.push('CIPHERTEXT_HTTP_WRITE_URL is required when CIPHERTEXT_STORE=http: the company endpoint, a URL template with {userId}');
  }
  const templates = [parsed.CIPHERTEXT_HTTP_WRITE_URL, parsed.CIPHERTEXT_HTTP_READ_URL].filter((t): t is string => t !== undefined);
  if (parsed.CIPHERTEXT_STORE === 'http' && templates.length > 0) {
    const perPair = templates.map((template) => template.includes('{pairId}'));
    if (perPair.some(Boolean) && !perPair.every(Boolean)) {
      problems.push('CIPHERTEXT_HTTP_WRITE_URL and CIPHERTEXT_HTTP_READ_URL must both contain {pairId}, or neither');
    } else if (!perPair[0] && !parsed.CIPHERTEXT_HTTP_ONE_RECORD_PER_USER) {
      problems.push(
        'CIPHERTEXT_HTTP_WRITE_URL has no {pairId}: one record per user means a backup that stores but never completes replaces the ' +
          'ciphertext of the last completed one. Key records by pair ({pairId} in both URLs), or accept that with CIPHERTEXT_HTTP_ONE_RECORD_PER_USER=true',
      );
    }
  }
  return problems;
}

export function toPortalConfig(e: BackendEnv): PortalClientConfig {
  return {
    enclaveUrl: e.PORTAL_ENCLAVE_URL,
    apiUrl: e.PORTAL_API_URL,
    timeoutMs: e.PORTAL_TIMEOUT_MS,
    storeCipherTextMethod: e.PORTAL_STORE_METHOD,
    maxResponseBytes: e.PORTAL_MAX_RESPONSE_BYTES,
  };
}

export function toCredentialsConfig(e: BackendEnv): HttpCredentialsSourceConfig {
  return {
    urlTemplate: e.CREDENTIALS_URL,
    timeoutMs: e.CREDENTIALS_TIMEOUT_MS,
    ...(e.CREDENTIALS_AUTH_HEADER ? { authHeader: toHeader(e.CREDENTIALS_AUTH_HEADER) } : {}),
  };
}

export function toStoreConfig(e: BackendEnv): CiphertextStoreConfig {
  const storeHeader = e.CIPHERTEXT_HTTP_AUTH_HEADER ? toHeader(e.CIPHERTEXT_HTTP_AUTH_HEADER) : undefined;
  return e.CIPHERTEXT_STORE === 'http'
    ? {
        kind: 'http',
        writeUrl: e.CIPHERTEXT_HTTP_WRITE_URL!,
        readUrl: e.CIPHERTEXT_HTTP_READ_URL ?? e.CIPHERTEXT_HTTP_WRITE_URL!,
        timeoutMs: e.CIPHERTEXT_HTTP_TIMEOUT_MS,
        ...(storeHeader ? { authHeader: storeHeader } : {}),
      }
    : { kind: e.CIPHERTEXT_STORE };
}
