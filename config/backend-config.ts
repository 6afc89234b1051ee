import { z } from 'zod';
import type { CiphertextStoreConfig, CiphertextStoreKind } from '../adapters/stores/ciphertext-store-factory';
import type { HttpCredentialsSourceConfig } from '../adapters/credentials/credentials-source';
import type { PortalClientConfig } from '../adapters/portal/portal-client';
import { envBool, envHeader, envInt, envNonEmpty, envUrl, envUrlTemplate, toHeader } from './env-schema';

/**
 * What every process that reads a user's backup needs besides Vault: Portal, the company's
 * credentials source, the ciphertext store and the company database. Shared by the workers and by
 * eject retrieval (which runs in the caller's process, not in a workflow).
 */
/** The stores a ciphertext can be kept in (one file each behind CiphertextStore). */
const STORE_KINDS = ['portal', 'postgres', 'http'] as const satisfies readonly CiphertextStoreKind[];

export const backendEnvSchema = z.object({
  PORTAL_ENCLAVE_URL: envUrl.default('https://mpc-client.portalhq.io'),
  PORTAL_API_URL: envUrl.default('https://api.portalhq.io'),
  PORTAL_TIMEOUT_MS: envInt(100, 120_000).default(30_000),
  PORTAL_STORE_METHOD: z.enum(['POST', 'PATCH'], { error: 'must be POST or PATCH' }).default('POST'),
  PORTAL_MAX_RESPONSE_BYTES: envInt(1024, 64 * 1024 * 1024).default(1024 * 1024),
  CREDENTIALS_URL: envUrlTemplate,
  CREDENTIALS_AUTH_HEADER: envHeader.optional(),
  CREDENTIALS_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  /** One store (one copy); `portal` when neither this nor CIPHERTEXT_STORES is set. */
  CIPHERTEXT_STORE: z.enum(STORE_KINDS, { error: 'must be portal, postgres or http' }).optional(),
  /** Several stores, comma-separated: a copy in each, in order of preference (checked in backendEnvProblems, with the rest). */
  CIPHERTEXT_STORES: envNonEmpty.transform((value) => value.split(',').map((kind) => kind.trim())).optional(),
  DATABASE_URL: envNonEmpty.refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL').optional(),
  CIPHERTEXT_HTTP_WRITE_URL: envUrlTemplate.optional(),
  CIPHERTEXT_HTTP_READ_URL: envUrlTemplate.optional(),
  CIPHERTEXT_HTTP_AUTH_HEADER: envHeader.optional(),
  CIPHERTEXT_HTTP_TIMEOUT_MS: envInt(100, 120_000).default(10_000),
  CIPHERTEXT_HTTP_ONE_RECORD_PER_USER: envBool.default(false),
});

export type BackendEnv = z.infer<typeof backendEnvSchema>;

/**
 * The stores named (CIPHERTEXT_STORES, else CIPHERTEXT_STORE, else `portal`), as given: unknown
 * names and repeats are reported by storeListProblems, never dropped.
 */
export function storeNames(parsed: Pick<BackendEnv, 'CIPHERTEXT_STORE' | 'CIPHERTEXT_STORES'>): string[] {
  return parsed.CIPHERTEXT_STORES ?? [parsed.CIPHERTEXT_STORE ?? 'portal'];
}

/** The stores that keep a copy, in order: storeNames once storeListProblems found nothing. */
export function storeKinds(parsed: BackendEnv): CiphertextStoreKind[] {
  return storeNames(parsed).filter((name): name is CiphertextStoreKind => (STORE_KINDS as readonly string[]).includes(name));
}

function storeListProblems(parsed: BackendEnv): string[] {
  const problems: string[] = [];
  if (parsed.CIPHERTEXT_STORE && parsed.CIPHERTEXT_STORES) {
    problems.push('set CIPHERTEXT_STORE (one store) or CIPHERTEXT_STORES (a copy in each of several), not both');
  }
  const names = storeNames(parsed);
  for (const name of new Set(names.filter((n) => !(STORE_KINDS as readonly string[]).includes(n)))) {
    problems.push(`CIPHERTEXT_STORES names an unknown store "${name}": each must be portal, postgres or http`);
  }
  for (const name of new Set(names.filter((n, index) => names.indexOf(n) !== index))) {
    problems.push(`CIPHERTEXT_STORES names ${name} more than once: each store keeps one copy, name it once`);
  }
  return problems;
}

export function backendEnvProblems(parsed: BackendEnv): string[] {
  const problems = storeListProblems(parsed);
  const kinds = storeKinds(parsed);
  const when = (kind: CiphertextStoreKind) => (parsed.CIPHERTEXT_STORES ? `CIPHERTEXT_STORES includes ${kind}` : `CIPHERTEXT_STORE=${kind}`);
  if (kinds.includes('postgres') && !parsed.DATABASE_URL) {
    problems.push(`DATABASE_URL is required when ${when('postgres')}: the company database, postgres://user:password@host:port/database`);
  }
  if (kinds.includes('http') && !parsed.CIPHERTEXT_HTTP_WRITE_URL) {
    problems.push(`CIPHERTEXT_HTTP_WRITE_URL is required when ${when('http')}: the company endpoint, a URL template with {userId}`);
  }
  if (kinds.includes('http')) problems.push(...httpTemplateProblems(parsed));
  return problems;
}

function httpTemplateProblems(parsed: BackendEnv): string[] {
  const templates = [parsed.CIPHERTEXT_HTTP_WRITE_URL, parsed.CIPHERTEXT_HTTP_READ_URL].filter((t): t is string => t !== undefined);
  if (templates.length === 0) return [];
  const perPair = templates.map((template) => template.includes('{pairId}'));
  if (perPair.some(Boolean) && !perPair.every(Boolean)) {
    return ['CIPHERTEXT_HTTP_WRITE_URL and CIPHERTEXT_HTTP_READ_URL must both contain {pairId}, or neither'];
  }
  if (!perPair[0] && !parsed.CIPHERTEXT_HTTP_ONE_RECORD_PER_USER) {
    return [
      'CIPHERTEXT_HTTP_WRITE_URL has no {pairId}: one record per user means a backup that stores but never completes replaces the ' +
        'ciphertext of the last completed one. Key records by pair ({pairId} in both URLs), or accept that with CIPHERTEXT_HTTP_ONE_RECORD_PER_USER=true',
    ];
  }
  return [];
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

/** Each store's configuration, in the order of CIPHERTEXT_STORES (one for CIPHERTEXT_STORE). */
export function toStoreConfigs(e: BackendEnv): CiphertextStoreConfig[] {
  return storeKinds(e).map((kind) => toStoreConfig(e, kind));
}

function toStoreConfig(e: BackendEnv, kind: CiphertextStoreKind): CiphertextStoreConfig {
  const storeHeader = e.CIPHERTEXT_HTTP_AUTH_HEADER ? toHeader(e.CIPHERTEXT_HTTP_AUTH_HEADER) : undefined;
  return kind === 'http'
    ? {
        kind: 'http',
        writeUrl: e.CIPHERTEXT_HTTP_WRITE_URL!,
        readUrl: e.CIPHERTEXT_HTTP_READ_URL ?? e.CIPHERTEXT_HTTP_WRITE_URL!,
        timeoutMs: e.CIPHERTEXT_HTTP_TIMEOUT_MS,
        ...(storeHeader ? { authHeader: storeHeader } : {}),
      }
    : { kind };
}
