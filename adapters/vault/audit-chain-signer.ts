import { z } from 'zod';
import type { AuditSigner } from '../../db/audit-chain';
import { VaultContractError } from '../../domain/errors';
import { describeZodError } from '../http/response-validation';
import type { VaultAuth } from './vault-auth';
import { vaultClient } from './vault-client';
import { classifyVaultError } from './vault-transit';

/** Where the audit chain's signing key lives (AUDIT_SIGNING_KEY, VAULT_TRANSIT_MOUNT). */
export interface AuditChainSignerConfig {
  endpoint: string;
  mount: string;
  /** An ed25519 (or other signing) Transit key, `audit-chain` by default. */
  keyName: string;
  timeoutMs: number;
  namespace?: string;
}

const signSchema = z.object({ data: z.object({ signature: z.string().startsWith('vault:v') }) });
const verifySchema = z.object({ data: z.object({ batch_results: z.array(z.object({ valid: z.boolean().optional(), error: z.string().optional() })) }) });

/**
 * Signs and verifies the audit chain's seals with a Vault Transit key (`transit/sign/<key>`,
 * `transit/verify/<key>`). The sealer (in the worker) needs `update` on both; an auditor only on
 * verify; the database administrator on neither. Errors are classified as Transit's are: an
 * unreachable or sealed Vault is retryable, a 403 names the missing policy.
 */
export class VaultAuditSigner implements AuditSigner {
  private readonly client: ReturnType<typeof vaultClient>;

  constructor(
    private readonly config: AuditChainSignerConfig,
    private readonly auth: VaultAuth,
  ) {
    this.client = vaultClient(config);
  }

  get keyName(): string {
    return this.config.keyName;
  }

  async sign(message: string): Promise<string> {
    const path = `${this.config.mount}/sign/${this.config.keyName}`;
    const parsed = signSchema.safeParse(await this.write(path, { input: Buffer.from(message, 'utf8').toString('base64') }));
    if (!parsed.success) throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
    return parsed.data.data.signature;
  }

  async verifyEach(items: { message: string; signature: string }[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const path = `${this.config.mount}/verify/${this.config.keyName}`;
    const batchInput = items.map((item) => ({ input: Buffer.from(item.message, 'utf8').toString('base64'), signature: item.signature }));
    const parsed = verifySchema.safeParse(await this.write(path, { batch_input: batchInput }));
    if (!parsed.success || parsed.data.data.batch_results.length !== items.length) {
      throw new VaultContractError(`Vault ${path} returned an unexpected body${parsed.success ? ` (${parsed.data.data.batch_results.length} results for ${items.length} inputs)` : `: ${describeZodError(parsed.error)}`}`);
    }
    return parsed.data.data.batch_results.map((result) => result.valid === true);
  }

  /** One write, with one re-authentication after a 403 (an expired token), as VaultTransit does. */
  private async write(path: string, body: object): Promise<unknown> {
    this.client.token = await this.auth.token();
    try {
      return await this.client.write(path, body);
    } catch (error) {
      if (!isForbidden(error)) throw classifyVaultError(error, path);
    }
    this.client.token = await this.auth.reauthenticate();
    try {
      return await this.client.write(path, body);
    } catch (error) {
      throw classifyVaultError(error, path);
    }
  }
}

function isForbidden(error: unknown): boolean {
  return (error as { response?: { statusCode?: unknown } } | undefined)?.response?.statusCode === 403;
}
