import nodeVault from 'node-vault';
import { z } from 'zod';
import {
  BackupDomainError,
  VaultContractError,
  VaultPermissionError,
  VaultRequestError,
  VaultUnavailableError,
} from '../../domain/errors';
import { httpFailureOf, NO_WORKER_METRICS, secondsSince, type CallMetrics } from '../../metrics/service-metrics';
import type { VaultAuth } from './vault-auth';
import { describeZodError } from '../http/response-validation';
import { vaultClient } from './vault-client';
import type { DecryptItem, EncryptItem, KmsKeyVersions, KmsProvider, RewrapItem } from '../kms/kms-provider';
import { ConfigError } from '../../config/config-error';

export type { DecryptItem, EncryptItem, RewrapItem } from '../kms/kms-provider';
export { ciphertextVersion, isBelowMinDecryptionVersion } from '../kms/kms-ciphertext';

export interface VaultTransitConfig {
  endpoint: string;
  mount: string;
  keyName: string;
  timeoutMs: number;
  namespace?: string;
}

const batchResultsSchema = z.object({
  data: z.object({
    batch_results: z.array(
      z.object({ ciphertext: z.string().optional(), plaintext: z.string().optional(), error: z.string().optional() }),
    ),
  }),
});

const keySchema = z.object({ data: z.object({ type: z.string(), derived: z.boolean() }) });

const keyVersionsSchema = z.object({
  data: z.object({
    latest_version: z.number().int().min(1),
    min_decryption_version: z.number().int().min(0),
    min_encryption_version: z.number().int().min(0).optional(),
  }),
});

/** The version numbers of the Transit key (`GET keys/<name>`). */
export type TransitKeyVersions = KmsKeyVersions;

type VaultClient = ReturnType<typeof nodeVault>;

/**
 * Vault Transit (or OpenBao) encryption through node-vault. One HTTP call per batch. Errors are
 * classified: unreachable, 429, 5xx and 503 (sealed) are retryable; 400 is permanent; 403
 * re-authenticates once and is permanent after that.
 */
export class VaultTransit implements KmsProvider {
  readonly provider = 'vault-transit' as const;
  private readonly client: VaultClient;

  constructor(
    private readonly config: VaultTransitConfig,
    private readonly auth: VaultAuth,
    client?: VaultClient,
    /** Every call by route template (`POST {mount}/encrypt/{key}`) and status class; none by default. */
    private readonly metrics: CallMetrics = NO_WORKER_METRICS.vault,
  ) {
    this.client = client ?? vaultClient(config);
  }

  async encryptBatch(items: EncryptItem[]): Promise<string[]> {
    const path = `${this.config.mount}/encrypt/${this.config.keyName}`;
    const results = await this.batch(path, {
      batch_input: items.map((item) => ({ plaintext: item.plaintext.toString('base64'), context: item.context })),
    });
    return results.map((result, index) => {
      if (result.error || !result.ciphertext) {
        throw new VaultRequestError(`Vault could not encrypt item ${index}: ${result.error ?? 'no ciphertext returned'}`);
      }
      return result.ciphertext;
    });
  }

  async decryptBatch(items: DecryptItem[]): Promise<Buffer[]> {
    const path = `${this.config.mount}/decrypt/${this.config.keyName}`;
    const results = await this.batch(path, {
      batch_input: items.map((item) => ({ ciphertext: item.ciphertext, context: item.context })),
    });
    return results.map((result, index) => {
      if (result.error || result.plaintext === undefined) {
        throw new VaultRequestError(`Vault could not decrypt item ${index}: ${result.error ?? 'no plaintext returned'}`);
      }
      return Buffer.from(result.plaintext, 'base64');
    });
  }

  /**
   * Like decryptBatch, but one item's failure (altered ciphertext, wrong context) does not hide the
   * others: each result is a plaintext or Vault's reason. Whole-call failures still throw.
   */
  async decryptEach(items: DecryptItem[]): Promise<({ plaintext: Buffer } | { error: string })[]> {
    try {
      return (await this.decryptBatch(items)).map((plaintext) => ({ plaintext }));
    } catch (error) {
      // Vault answers a batch with one bad item as a whole 400: ask again item by item to tell which.
      if (!(error instanceof VaultRequestError) || items.length === 1) {
        if (error instanceof VaultRequestError) return [{ error: error.message.slice(0, 300) }];
        throw error;
      }
    }
    const results: ({ plaintext: Buffer } | { error: string })[] = [];
    for (const item of items) results.push(...(await this.decryptEach([item])));
    return results;
  }

  /** The Transit key's name (VAULT_TRANSIT_KEY), for reports; never a secret. */
  get keyName(): string {
    return this.config.keyName;
  }

  /** The key's latest and minimum versions (needs `read` on `<mount>/keys/<key>`). */
  async keyVersions(): Promise<TransitKeyVersions> {
    const path = `${this.config.mount}/keys/${this.config.keyName}`;
    return parseKeyVersions(await this.read(path), path);
  }

  /**
   * Adds a new key version, which new encryptions and rewraps then use (needs `update` on
   * `<mount>/keys/<key>/rotate`). Not idempotent: every call adds a version; a caller that may
   * repeat (an activity retried after a lost response) compares keyVersions() first.
   */
  async rotateKey(): Promise<TransitKeyVersions> {
    await this.write(`${this.config.mount}/keys/${this.config.keyName}/rotate`, {});
    // Vault 1.14 answers with the key, older servers with 204: read it either way.
    return this.keyVersions();
  }

  /**
   * Re-encrypts each ciphertext under `keyVersion` (latest when absent) in its own context, the
   * plaintext never leaving Vault (needs `update` on `<mount>/rewrap/<key>`). One item's failure
   * (altered ciphertext, wrong context) does not hide the others: each result is the new
   * ciphertext or Vault's reason. Whole-call failures throw, classified.
   */
  async rewrapEach(items: RewrapItem[], keyVersion?: number): Promise<({ ciphertext: string } | { error: string })[]> {
    const path = `${this.config.mount}/rewrap/${this.config.keyName}`;
    let results;
    try {
      results = await this.batch(path, {
        batch_input: items.map((item) => ({ ciphertext: item.ciphertext, context: item.context, ...(keyVersion !== undefined ? { key_version: keyVersion } : {}) })),
      });
    } catch (error) {
      // Vault 1.14 answers a rewrap batch 200 with per-item errors; servers that answer a partly
      // failed batch with a whole 400 (as decrypt does) are asked again item by item.
      if (!(error instanceof VaultRequestError)) throw error;
      if (items.length === 1) return [{ error: error.message.slice(0, 300) }];
      const each: ({ ciphertext: string } | { error: string })[] = [];
      for (const item of items) each.push(...(await this.rewrapEach([item], keyVersion)));
      return each;
    }
    return results.map((result) =>
      result.error || !result.ciphertext ? { error: (result.error ?? 'no ciphertext returned').slice(0, 300) } : { ciphertext: result.ciphertext },
    );
  }

  /**
   * Raises the key's min_decryption_version (needs `update` on `<mount>/keys/<key>/config`):
   * ciphertexts of older versions stop decrypting. Returns the key's versions afterwards.
   */
  async setMinDecryptionVersion(version: number): Promise<TransitKeyVersions> {
    await this.write(`${this.config.mount}/keys/${this.config.keyName}/config`, { min_decryption_version: version });
    return this.keyVersions();
  }

  /** The Transit key's type and whether it derives per-context keys (needs `read` on the key). */
  async describeKey(): Promise<{ type: string; derived: boolean }> {
    const path = `${this.config.mount}/keys/${this.config.keyName}`;
    this.client.token = await this.auth.token();
    let response: unknown;
    try {
      response = await this.observed('GET', path, () => this.client.read(path));
    } catch (error) {
      throw classifyVaultError(error, path);
    }
    const parsed = keySchema.safeParse(response);
    if (!parsed.success) throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
    return parsed.data.data;
  }

  /**
   * The configured Transit key exists and can bind ciphertexts to a context. Vault creates a missing
   * key on the first encrypt for a token allowed to, so a typo in VAULT_TRANSIT_KEY would otherwise
   * start encrypting backups under a new, unintended key. An unreachable Vault or a token without
   * `read` on the key only warns: outages are survivable.
   */
  async checkKeyAtStart(warn: (message: string) => void): Promise<void> {
    const { mount, keyName } = this.config;
    let key;
    try {
      key = await this.describeKey();
    } catch (error) {
      if (error instanceof VaultRequestError && /404/.test(error.message)) {
        throw new ConfigError([
          `VAULT_TRANSIT_KEY: there is no Transit key "${keyName}" at mount "${mount}" (VAULT_TRANSIT_MOUNT); create it with type=aes256-gcm96 derived=true`,
        ]);
      }
      if (error instanceof VaultPermissionError) {
        warn(`cannot verify Transit key ${keyName}: grant "read" on ${mount}/keys/${keyName} to check it at start`);
        return;
      }
      warn(`cannot verify Transit key ${keyName} now (${(error as Error).message}); backups will wait for Vault`);
      return;
    }
    const problems: string[] = [];
    if (key.type !== 'aes256-gcm96') problems.push(`VAULT_TRANSIT_KEY: key "${keyName}" is ${key.type}, not aes256-gcm96`);
    if (!key.derived) problems.push(`VAULT_TRANSIT_KEY: key "${keyName}" is not derived (derived=true is needed to bind ciphertexts to user and pair)`);
    if (problems.length > 0) throw new ConfigError(problems);
  }

  private async batch(path: string, body: { batch_input: object[] }) {
    const expected = body.batch_input.length;
    const response = await this.write(path, body);
    const parsed = batchResultsSchema.safeParse(response);
    if (!parsed.success) {
      throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
    }
    const results = parsed.data.data.batch_results;
    if (results.length !== expected) {
      throw new VaultContractError(`Vault ${path} returned ${results.length} results for ${expected} inputs`);
    }
    return results;
  }

  /** One HTTP call to Vault, counted by route template: mount and key name are configuration, never in the label. */
  private async observed<T>(method: 'GET' | 'POST', path: string, call: () => Promise<T>): Promise<T> {
    const route = `${method} ${transitRoute(path, this.config.mount, this.config.keyName)}`;
    const startedAt = performance.now();
    try {
      const result = await call();
      // node-vault resolves only on 2xx (it does not hand back the status).
      this.metrics.record({ route, status: 200, seconds: secondsSince(startedAt) });
      return result;
    } catch (error) {
      this.metrics.record({ route, ...httpFailureOf(error), seconds: secondsSince(startedAt) });
      throw error;
    }
  }

  /** A read with the same one re-authentication after a 403 as write(). */
  private async read(path: string): Promise<unknown> {
    this.client.token = await this.auth.token();
    try {
      return await this.observed('GET', path, () => this.client.read(path));
    } catch (error) {
      if (statusOf(error) !== 403) throw classifyVaultError(error, path);
    }
    this.client.token = await this.auth.reauthenticate();
    try {
      return await this.observed('GET', path, () => this.client.read(path));
    } catch (error) {
      throw classifyVaultError(error, path);
    }
  }

  private async write(path: string, body: object): Promise<unknown> {
    this.client.token = await this.auth.token();
    try {
      return await this.observed('POST', path, () => this.client.write(path, body));
    } catch (error) {
      if (statusOf(error) !== 403) throw classifyVaultError(error, path);
    }
    // One re-authentication after a 403 (expired or revoked token), then the 403 is final.
    this.client.token = await this.auth.reauthenticate();
    try {
      return await this.observed('POST', path, () => this.client.write(path, body));
    } catch (error) {
      throw classifyVaultError(error, path);
    }
  }
}

/** `transit/encrypt/mpc-backup` → `{mount}/encrypt/{key}`; anything unexpected → `{mount}/other`. */
export function transitRoute(path: string, mount: string, keyName: string): string {
  if (!path.startsWith(`${mount}/`)) return '{mount}/other';
  const [operation, key, ...rest] = path.slice(mount.length + 1).split('/');
  if (!operation || !/^[a-z_]+$/.test(operation) || rest.some((segment) => !/^[a-z_]+$/.test(segment))) return '{mount}/other';
  return ['{mount}', operation, ...(key === undefined ? [] : [key === keyName ? '{key}' : '{other}']), ...rest].join('/');
}

function parseKeyVersions(response: unknown, path: string): TransitKeyVersions {
  const parsed = keyVersionsSchema.safeParse(response);
  if (!parsed.success) throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
  const data = parsed.data.data;
  return { latestVersion: data.latest_version, minDecryptionVersion: data.min_decryption_version, minEncryptionVersion: data.min_encryption_version ?? 0 };
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { response?: { statusCode?: unknown } } | undefined)?.response?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function vaultMessage(error: unknown): string {
  const body = (error as { response?: { body?: { errors?: unknown; data?: { batch_results?: unknown } } } }).response?.body;
  const errors = body?.errors;
  if (Array.isArray(errors) && errors.length > 0) return errors.map(String).join('; ').slice(0, 300);
  // A batch with a failed item is answered 400 with the reasons per item (e.g. "cipher: message authentication failed").
  const results = body?.data?.batch_results;
  if (Array.isArray(results)) {
    const reasons = [...new Set(results.map((result) => (result as { error?: unknown })?.error).filter((reason): reason is string => typeof reason === 'string' && reason.length > 0))];
    if (reasons.length > 0) return reasons.join('; ').slice(0, 300);
  }
  return '';
}

export function classifyVaultError(error: unknown, path: string): BackupDomainError {
  if (error instanceof BackupDomainError) return error;
  const status = statusOf(error);
  const detail = vaultMessage(error);
  const suffix = detail ? ` (${detail})` : '';
  if (status === undefined) {
    const code = (error as { code?: unknown }).code;
    return new VaultUnavailableError(`Vault ${path} is unreachable (${typeof code === 'string' ? code : 'network error'}); will retry`);
  }
  if (status === 403) {
    return new VaultPermissionError(`Vault ${path} was refused (403)${suffix}: the token lacks the transit policy or has expired`);
  }
  if (status === 429 || status >= 500) {
    const sealed = status === 503 ? ' (sealed or in standby)' : '';
    return new VaultUnavailableError(`Vault ${path} failed with ${status}${sealed}${suffix}; will retry`);
  }
  if (status === 404) {
    return new VaultRequestError(`Vault ${path} returned 404${suffix}: check VAULT_TRANSIT_MOUNT and VAULT_TRANSIT_KEY`);
  }
  return new VaultRequestError(`Vault ${path} rejected the request with ${status}${suffix}`);
}
