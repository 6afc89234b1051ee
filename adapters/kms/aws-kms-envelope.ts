import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListAliasesCommand,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import { ConfigError } from '../../config/config-error';
import { BackupDomainError, KmsContractError, KmsPermissionError, KmsRequestError, KmsUnavailableError } from '../../domain/errors';
import { NO_WORKER_METRICS, secondsSince, type CallMetrics } from '../../metrics/service-metrics';
import { BELOW_MIN_DECRYPTION_VERSION } from './kms-ciphertext';
import type { DecryptItem, DecryptOutcome, EncryptItem, KmsKeyVersions, KmsProvider, RewrapItem, RewrapOutcome } from './kms-provider';
import { contextParts } from './transit-context';

/** AWS KMS settings (AWS_REGION, AWS_KMS_ENDPOINT, AWS_KMS_KEY_ALIAS, …; config/kms-config.ts). */
export interface AwsKmsConfig {
  region: string;
  /** Unset: AWS's own endpoint for the region; set for local-kms or a VPC endpoint. */
  endpoint?: string;
  /** The key's alias, `alias/<name>`; key version N is the KMS key that `<alias>/v<N>` names. */
  keyAlias: string;
  timeoutMs: number;
  /** Unset: the AWS SDK's default chain (environment, profile, instance or task role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * The KMS client every process builds from AwsKmsConfig. Retries are Temporal's (each step's retry
 * policy): one attempt per call keeps the classification plain. `throwOnRequestTimeout`: without
 * it, @smithy/node-http-handler (4.x) only logs a warning when `requestTimeout` passes and the
 * request goes on waiting; a KMS that accepts a connection and never answers then held a step
 * until its two-minute start-to-close timeout (heartbeats kept going). With it, the call fails
 * with a TimeoutError (KmsUnavailableError: retried at once, and by another worker if need be).
 */
export function awsKmsClient(config: Omit<AwsKmsConfig, 'keyAlias'>): KMSClient {
  return new KMSClient({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
    maxAttempts: 1,
    requestHandler: { requestTimeout: config.timeoutMs, connectionTimeout: Math.min(config.timeoutMs, 5_000), throwOnRequestTimeout: true },
  });
}

/** One envelope, format e1 (kms-ciphertext.ts). */
interface Envelope {
  version: number;
  encryptedDataKey: Buffer;
  iv: Buffer;
  sealed: Buffer;
}

const FORMAT = 'awskms:e1';
const ENVELOPE = /^awskms:e1:v([0-9]{1,9}):([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function parseEnvelope(ciphertext: string): Envelope | undefined {
  const match = ENVELOPE.exec(ciphertext);
  if (!match) return undefined;
  const iv = Buffer.from(match[3]!, 'base64');
  const sealed = Buffer.from(match[4]!, 'base64');
  if (iv.length !== IV_BYTES || sealed.length < TAG_BYTES) return undefined;
  return { version: Number(match[1]), encryptedDataKey: Buffer.from(match[2]!, 'base64'), iv, sealed };
}

function formatEnvelope(envelope: Envelope): string {
  return [FORMAT, `v${envelope.version}`, envelope.encryptedDataKey.toString('base64'), envelope.iv.toString('base64'), envelope.sealed.toString('base64')].join(':');
}

/**
 * The binding as AWS KMS takes it: the encryption context (key-value pairs, logged by CloudTrail,
 * checked by KMS on every Decrypt and ReEncrypt of the data key) and the associated data of the local
 * AES-256-GCM (the same binding, so the data ciphertext cannot be moved to another user or pair
 * either, even with its data key).
 */
function bindingOf(context: string): { encryptionContext: Record<string, string>; aad: Buffer } {
  let parts;
  try {
    parts = contextParts(context);
  } catch (error) {
    throw new KmsRequestError(`not a binding context: ${(error as Error).message}`);
  }
  const encryptionContext = { purpose: parts.purpose, ...parts.fields };
  const canonical = Object.keys(encryptionContext)
    .sort()
    .map((key) => `${key}=${encryptionContext[key as keyof typeof encryptionContext]}`)
    .join('|');
  return { encryptionContext, aad: Buffer.from(`${FORMAT}|${canonical}`, 'utf8') };
}

function nameOf(error: unknown): string {
  const name = (error as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : 'Error';
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The exceptions that are about one item (its ciphertext or context), not about the call. */
const ITEM_EXCEPTIONS = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);
const PERMISSION_EXCEPTIONS = new Set(['AccessDeniedException', 'UnrecognizedClientException', 'InvalidSignatureException', 'ExpiredTokenException', 'IncompleteSignature', 'MissingAuthenticationToken']);
const UNAVAILABLE_EXCEPTIONS = new Set(['KMSInternalException', 'DependencyTimeoutException', 'KeyUnavailableException', 'ThrottlingException', 'LimitExceededException', 'ServiceUnavailableException', 'InternalFailureException', 'TimeoutError', 'RequestTimeout']);

/** An AWS SDK failure as a domain error: retryable when KMS is down, slow or throttling; permission; request. */
export function classifyKmsError(error: unknown, operation: string): BackupDomainError {
  if (error instanceof BackupDomainError) return error;
  const name = nameOf(error);
  const status = statusOf(error);
  // AWS's messages name keys and aliases, never key material; cut to length all the same.
  const message = ((error as { message?: unknown }).message ?? '').toString().slice(0, 200);
  const detail = `${name}${message ? `: ${message}` : ''}`;
  if (PERMISSION_EXCEPTIONS.has(name) || status === 401 || status === 403) {
    return new KmsPermissionError(`AWS KMS ${operation} was refused (${detail}): the credentials lack the key policy or IAM permission, or have expired`);
  }
  if (UNAVAILABLE_EXCEPTIONS.has(name) || status === 429 || (status !== undefined && status >= 500)) {
    return new KmsUnavailableError(`AWS KMS ${operation} failed (${detail}); will retry`);
  }
  if (status === undefined) {
    const code = (error as { code?: unknown }).code;
    return new KmsUnavailableError(`AWS KMS ${operation} is unreachable (${typeof code === 'string' ? code : name}); will retry`);
  }
  if (name === 'NotFoundException') {
    return new KmsRequestError(`AWS KMS ${operation}: ${detail} (check AWS_KMS_KEY_ALIAS and AWS_REGION)`);
  }
  return new KmsRequestError(`AWS KMS ${operation} rejected the request with ${status} (${detail})`);
}

/**
 * AWS KMS envelope encryption, as Portal's backup guide recommends: per share, a fresh AES-256 data
 * key from `GenerateDataKey`, AES-256-GCM locally with the binding (user and pair) as associated
 * data and as the KMS encryption context; only the encrypted data key is stored, beside the
 * ciphertext, in the versioned format of kms-ciphertext.ts. The plaintext data key never leaves
 * this class and is zeroed once used.
 *
 * Key versions: AWS KMS rotates a key's backing material itself and never lets the old material
 * stop working, so the version that key rotation (census, rewrap, guard, raise) counts is a KMS key
 * of its own: version N is the key the alias `<alias>/v<N>`
 * names. `rotateKey` creates a key and its alias; a rewrap is `ReEncrypt` of the data key to the
 * target version's key (the AES ciphertext is unchanged); min_decryption_version is the lowest
 * version whose key is enabled, and raising it disables the keys below (DisableKey: reversible, and
 * ScheduleKeyDeletion stays a human decision).
 */
export class AwsKmsEnvelope implements KmsProvider {
  readonly provider = 'aws-kms' as const;
  private readonly client: KMSClient;
  /** KMS key ARN or id → version: never changes once an alias names a key, so it is kept. */
  private readonly versionOfKey = new Map<string, number>();

  constructor(
    private readonly config: AwsKmsConfig,
    /** Every call, by operation (`aws-kms GenerateDataKey`) and outcome; counted with the Vault calls (the KMS request metric). */
    private readonly metrics: CallMetrics = NO_WORKER_METRICS.vault,
    client?: KMSClient,
  ) {
    this.client = client ?? awsKmsClient(config);
  }

  get keyName(): string {
    return this.config.keyAlias;
  }

  private aliasOf(version: number): string {
    return `${this.config.keyAlias}/v${version}`;
  }

  private async call<T>(operation: string, send: () => Promise<T>): Promise<T> {
    const startedAt = performance.now();
    try {
      const result = await send();
      this.metrics.record({ route: `aws-kms ${operation}`, status: 200, seconds: secondsSince(startedAt) });
      return result;
    } catch (error) {
      const status = statusOf(error);
      this.metrics.record({ route: `aws-kms ${operation}`, ...(status !== undefined ? { status } : { failure: 'network' as const }), seconds: secondsSince(startedAt) });
      throw error;
    }
  }

  /** Every version's alias → key id (ListAliases, all pages). */
  private async versionKeys(): Promise<Map<number, string>> {
    const prefix = `${this.config.keyAlias}/v`;
    const versions = new Map<number, string>();
    let marker: string | undefined;
    try {
      do {
        const page = await this.call('ListAliases', () => this.client.send(new ListAliasesCommand({ Limit: 100, ...(marker ? { Marker: marker } : {}) })));
        for (const alias of page.Aliases ?? []) {
          const name = alias.AliasName ?? '';
          if (!name.startsWith(prefix) || !alias.TargetKeyId) continue;
          const version = Number(name.slice(prefix.length));
          if (!Number.isInteger(version) || version < 1 || String(version) !== name.slice(prefix.length)) continue;
          versions.set(version, alias.TargetKeyId);
        }
        marker = page.Truncated ? page.NextMarker : undefined;
      } while (marker);
    } catch (error) {
      throw classifyKmsError(error, 'ListAliases');
    }
    return versions;
  }

  private async latest(): Promise<{ version: number; keyId: string }> {
    const versions = await this.versionKeys();
    if (versions.size === 0) throw new KmsRequestError(`AWS KMS has no alias ${this.aliasOf(1)}: create the key's first version (see docs/storage.md)`);
    const version = Math.max(...versions.keys());
    return { version, keyId: versions.get(version)! };
  }

  /** The version of the KMS key a response names (an ARN), from the aliases when not known yet. */
  private async versionOfArn(keyArn: string | undefined): Promise<number | undefined> {
    if (!keyArn) return undefined;
    const keyId = keyArn.split('/').pop()!;
    const known = this.versionOfKey.get(keyId);
    if (known !== undefined) return known;
    for (const [version, id] of await this.versionKeys()) this.versionOfKey.set(id.split('/').pop()!, version);
    return this.versionOfKey.get(keyId);
  }

  async keyVersions(): Promise<KmsKeyVersions> {
    const versions = await this.versionKeys();
    if (versions.size === 0) throw new KmsRequestError(`AWS KMS has no alias ${this.aliasOf(1)}: create the key's first version (see docs/storage.md)`);
    const latestVersion = Math.max(...versions.keys());
    let minDecryptionVersion = 1;
    for (const version of [...versions.keys()].sort((a, b) => a - b)) {
      if (!(await this.enabled(versions.get(version)!))) minDecryptionVersion = version + 1;
    }
    return { latestVersion, minDecryptionVersion, minEncryptionVersion: 0 };
  }

  private async enabled(keyId: string): Promise<boolean> {
    try {
      const described = await this.call('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: keyId })));
      return described.KeyMetadata?.Enabled === true && described.KeyMetadata.KeyState === 'Enabled';
    } catch (error) {
      throw classifyKmsError(error, 'DescribeKey');
    }
  }

  async encryptBatch(items: EncryptItem[]): Promise<string[]> {
    const { version, keyId } = await this.latest();
    return Promise.all(items.map((item) => this.encryptOne(item, version, keyId)));
  }

  private async encryptOne(item: EncryptItem, version: number, keyId: string): Promise<string> {
    const { encryptionContext, aad } = bindingOf(item.context);
    let generated;
    try {
      generated = await this.call('GenerateDataKey', () =>
        this.client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: encryptionContext })),
      );
    } catch (error) {
      throw classifyKmsError(error, 'GenerateDataKey');
    }
    const dataKey = generated.Plaintext;
    try {
      if (!dataKey || dataKey.length !== 32 || !generated.CiphertextBlob) throw new KmsContractError('AWS KMS GenerateDataKey returned no 256-bit data key');
      if (generated.KeyId && generated.KeyId.split('/').pop() !== keyId.split('/').pop()) {
        throw new KmsContractError(`AWS KMS GenerateDataKey used another key than version ${version}'s`);
      }
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
      cipher.setAAD(aad);
      const sealed = Buffer.concat([cipher.update(item.plaintext), cipher.final(), cipher.getAuthTag()]);
      return formatEnvelope({ version, encryptedDataKey: Buffer.from(generated.CiphertextBlob), iv, sealed });
    } finally {
      dataKey?.fill(0);
    }
  }

  async decryptBatch(items: DecryptItem[]): Promise<Buffer[]> {
    const results = await this.decryptEach(items);
    return results.map((result, index) => {
      if ('error' in result) {
        results.forEach((other) => 'plaintext' in other && other.plaintext.fill(0));
        throw new KmsRequestError(`AWS KMS envelope could not decrypt item ${index}: ${result.error}`);
      }
      return result.plaintext;
    });
  }

  async decryptEach(items: DecryptItem[]): Promise<DecryptOutcome[]> {
    return Promise.all(items.map((item) => this.decryptOne(item)));
  }

  /** The data key of one envelope (the caller zeroes it), or the item's own reason it cannot be had. */
  private async dataKeyOf(envelope: Envelope, encryptionContext: Record<string, string>): Promise<{ dataKey: Uint8Array } | { error: string }> {
    let decrypted;
    try {
      decrypted = await this.call('Decrypt', () => this.client.send(new DecryptCommand({ CiphertextBlob: envelope.encryptedDataKey, EncryptionContext: encryptionContext })));
    } catch (error) {
      const name = nameOf(error);
      if (ITEM_EXCEPTIONS.has(name)) return { error: `AWS KMS cannot decrypt its data key in this context (${name}): altered, or stored under another user or pair` };
      if (name === 'DisabledException' || name === 'KMSInvalidStateException' || name === 'AccessDeniedException') {
        // A disabled key version is below min_decryption_version (local-kms answers it AccessDenied).
        const below = await this.belowMinimum(envelope.version);
        if (below) return { error: below };
      }
      throw classifyKmsError(error, 'Decrypt');
    }
    const dataKey = decrypted.Plaintext;
    if (!dataKey || dataKey.length !== 32) {
      dataKey?.fill(0);
      throw new KmsContractError('AWS KMS Decrypt returned no 256-bit data key');
    }
    if ((await this.versionOfArn(decrypted.KeyId)) !== envelope.version) {
      dataKey.fill(0);
      return { error: `its data key is not under the KMS key of version ${envelope.version} that the envelope names: altered` };
    }
    return { dataKey };
  }

  private async belowMinimum(version: number): Promise<string | undefined> {
    const { minDecryptionVersion } = await this.keyVersions();
    return version < minDecryptionVersion
      ? `key version ${version} is disabled, below min_decryption_version ${minDecryptionVersion}: ${BELOW_MIN_DECRYPTION_VERSION}`
      : undefined;
  }

  private async decryptOne(item: DecryptItem): Promise<DecryptOutcome> {
    const envelope = parseEnvelope(item.ciphertext);
    if (!envelope) return { error: 'not an AWS KMS envelope (awskms:e1:v<N>:…)' };
    const { encryptionContext, aad } = bindingOf(item.context);
    const key = await this.dataKeyOf(envelope, encryptionContext);
    if ('error' in key) return key;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.dataKey, envelope.iv);
      decipher.setAAD(aad);
      decipher.setAuthTag(envelope.sealed.subarray(envelope.sealed.length - TAG_BYTES));
      const plaintext = decipher.update(envelope.sealed.subarray(0, envelope.sealed.length - TAG_BYTES));
      try {
        return { plaintext: Buffer.concat([plaintext, decipher.final()]) };
      } catch {
        plaintext.fill(0);
        return { error: 'AES-256-GCM authentication failed: the ciphertext was altered, or belongs to another user or pair' };
      } finally {
        plaintext.fill(0);
      }
    } finally {
      key.dataKey.fill(0);
    }
  }

  async rewrapEach(items: RewrapItem[], keyVersion?: number): Promise<RewrapOutcome[]> {
    const versions = await this.versionKeys();
    const target = keyVersion ?? Math.max(0, ...versions.keys());
    const targetKey = versions.get(target);
    if (!targetKey) throw new KmsRequestError(`AWS KMS has no key version ${target} (no alias ${this.aliasOf(target)})`);
    return Promise.all(items.map((item) => this.rewrapOne(item, target, targetKey)));
  }

  private async rewrapOne(item: RewrapItem, target: number, targetKey: string): Promise<RewrapOutcome> {
    const envelope = parseEnvelope(item.ciphertext);
    if (!envelope) return { error: 'not an AWS KMS envelope (awskms:e1:v<N>:…)' };
    const { encryptionContext } = bindingOf(item.context);
    let reEncrypted;
    try {
      reEncrypted = await this.call('ReEncrypt', () =>
        this.client.send(
          new ReEncryptCommand({
            CiphertextBlob: envelope.encryptedDataKey,
            SourceEncryptionContext: encryptionContext,
            DestinationKeyId: targetKey,
            DestinationEncryptionContext: encryptionContext,
          }),
        ),
      );
    } catch (error) {
      const name = nameOf(error);
      if (ITEM_EXCEPTIONS.has(name)) return { error: `AWS KMS cannot re-encrypt its data key in this context (${name})` };
      if (name === 'DisabledException' || name === 'KMSInvalidStateException') {
        const below = await this.belowMinimum(envelope.version);
        if (below) return { error: below };
      }
      throw classifyKmsError(error, 'ReEncrypt');
    }
    if (!reEncrypted.CiphertextBlob) throw new KmsContractError('AWS KMS ReEncrypt returned no ciphertext');
    if (reEncrypted.KeyId && reEncrypted.KeyId.split('/').pop() !== targetKey.split('/').pop()) {
      return { error: `AWS KMS re-encrypted it under another key than version ${target}'s` };
    }
    return { ciphertext: formatEnvelope({ ...envelope, version: target, encryptedDataKey: Buffer.from(reEncrypted.CiphertextBlob) }) };
  }

  /** Creates the next version's KMS key and its alias (needs kms:CreateKey and kms:CreateAlias). */
  async rotateKey(): Promise<KmsKeyVersions> {
    const versions = await this.versionKeys();
    const next = Math.max(0, ...versions.keys()) + 1;
    await createKeyVersion(this.client, this.config.keyAlias, next, (operation, send) => this.call(operation, send));
    return this.keyVersions();
  }

  /** Disables the keys of the versions below `version` and enables those from it up (needs kms:DisableKey, kms:EnableKey). */
  async setMinDecryptionVersion(version: number): Promise<KmsKeyVersions> {
    const versions = await this.versionKeys();
    for (const [each, keyId] of [...versions].sort(([a], [b]) => a - b)) {
      const enabled = await this.enabled(keyId);
      try {
        if (each < version && enabled) await this.call('DisableKey', () => this.client.send(new DisableKeyCommand({ KeyId: keyId })));
        if (each >= version && !enabled) await this.call('EnableKey', () => this.client.send(new EnableKeyCommand({ KeyId: keyId })));
      } catch (error) {
        throw classifyKmsError(error, each < version ? 'DisableKey' : 'EnableKey');
      }
    }
    return this.keyVersions();
  }

  async checkKeyAtStart(warn: (message: string) => void): Promise<void> {
    let latest;
    try {
      latest = await this.latest();
    } catch (error) {
      if (error instanceof KmsRequestError) throw new ConfigError([`AWS_KMS_KEY_ALIAS: ${error.message}`]);
      warn(`cannot verify AWS KMS key ${this.config.keyAlias} now (${(error as Error).message}); backups will wait for KMS`);
      return;
    }
    let described;
    try {
      described = await this.call('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: latest.keyId })));
    } catch (error) {
      warn(`cannot describe AWS KMS key ${this.aliasOf(latest.version)} now (${classifyKmsError(error, 'DescribeKey').message})`);
      return;
    }
    const meta = described.KeyMetadata;
    const problems: string[] = [];
    if (meta?.KeySpec !== undefined && meta.KeySpec !== 'SYMMETRIC_DEFAULT') problems.push(`AWS_KMS_KEY_ALIAS: ${this.aliasOf(latest.version)} is ${meta.KeySpec}, not SYMMETRIC_DEFAULT`);
    if (meta?.KeyUsage !== undefined && meta.KeyUsage !== 'ENCRYPT_DECRYPT') problems.push(`AWS_KMS_KEY_ALIAS: ${this.aliasOf(latest.version)} is for ${meta.KeyUsage}, not ENCRYPT_DECRYPT`);
    if (meta?.Enabled === false) problems.push(`AWS_KMS_KEY_ALIAS: ${this.aliasOf(latest.version)}, the latest version, is disabled`);
    if (problems.length > 0) throw new ConfigError(problems);
  }
}

/**
 * Creates key version `version` under `keyAlias`: a symmetric ENCRYPT_DECRYPT KMS key and the alias
 * `<keyAlias>/v<version>`. Used by rotateKey and to set up a key's first version (the stack).
 */
export async function createKeyVersion(
  client: KMSClient,
  keyAlias: string,
  version: number,
  call: <T>(operation: string, send: () => Promise<T>) => Promise<T> = (_operation, send) => send(),
): Promise<string> {
  let keyId: string | undefined;
  try {
    const created = await call('CreateKey', () =>
      client.send(new CreateKeyCommand({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT', Description: `mpc-backup ${keyAlias} version ${version}` })),
    );
    keyId = created.KeyMetadata?.KeyId;
    if (!keyId) throw new KmsContractError('AWS KMS CreateKey returned no key id');
    await call('CreateAlias', () => client.send(new CreateAliasCommand({ AliasName: `${keyAlias}/v${version}`, TargetKeyId: keyId })));
  } catch (error) {
    throw classifyKmsError(error, keyId ? 'CreateAlias' : 'CreateKey');
  }
  return keyId;
}
