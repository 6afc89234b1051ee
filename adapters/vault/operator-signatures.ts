import { z } from 'zod';
import { VaultContractError } from '../../domain/errors';
import { describeZodError } from '../http/response-validation';
import type { VaultAuth } from './vault-auth';
import { vaultClient } from './vault-client';
import { classifyVaultError } from './vault-transit';

/**
 * Signatures over operator statements with Vault Transit signing keys (ed25519): `sign` with the
 * caller's own token (an operator may use only its own `operator-<name>` key; the HTTP API only its
 * own key), `verify` with the workers' token (`update` on `<mount>/verify/*`). The statement is
 * signed as given (its exact text), never the caller's token: the signature is all that leaves.
 */
export interface OperatorSignatures {
  sign(keyName: string, statement: string): Promise<string>;
  /** True when `signature` is `keyName`'s over `statement`; false when it is not (or the key does not exist). */
  verify(keyName: string, statement: string, signature: string): Promise<boolean>;
}

const signSchema = z.object({ data: z.object({ signature: z.string().min(1) }) });
const verifySchema = z.object({ data: z.object({ valid: z.boolean() }) });

export interface OperatorSignaturesConfig {
  endpoint: string;
  /** The Transit mount of the signing keys (OPERATOR_SIGNING_MOUNT, default transit). */
  mount: string;
  timeoutMs: number;
  namespace?: string;
}

export class VaultOperatorSignatures implements OperatorSignatures {
  private readonly client;

  constructor(
    private readonly config: OperatorSignaturesConfig,
    private readonly auth: VaultAuth,
  ) {
    this.client = vaultClient(config);
  }

  async sign(keyName: string, statement: string): Promise<string> {
    const path = `${this.config.mount}/sign/${keyName}`;
    let response: unknown;
    try {
      response = await this.write(path, { input: Buffer.from(statement, 'utf8').toString('base64') });
    } catch (error) {
      throw classifyVaultError(error, path);
    }
    const parsed = signSchema.safeParse(response);
    if (!parsed.success) throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
    return parsed.data.data.signature;
  }

  async verify(keyName: string, statement: string, signature: string): Promise<boolean> {
    const path = `${this.config.mount}/verify/${keyName}`;
    let response: unknown;
    try {
      response = await this.write(path, { input: Buffer.from(statement, 'utf8').toString('base64'), signature });
    } catch (error) {
      // Vault answers 400 for a key that does not exist or a signature it cannot parse: not verified.
      if (statusOf(error) === 400) return false;
      throw classifyVaultError(error, path);
    }
    const parsed = verifySchema.safeParse(response);
    if (!parsed.success) throw new VaultContractError(`Vault ${path} returned an unexpected body: ${describeZodError(parsed.error)}`);
    return parsed.data.data.valid;
  }

  private async write(path: string, body: object): Promise<unknown> {
    this.client.token = await this.auth.token();
    try {
      return await this.client.write(path, body);
    } catch (error) {
      if (statusOf(error) !== 403) throw error;
    }
    this.client.token = await this.auth.reauthenticate();
    return this.client.write(path, body);
  }
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { response?: { statusCode?: unknown } } | undefined)?.response?.statusCode;
  return typeof status === 'number' ? status : undefined;
}
