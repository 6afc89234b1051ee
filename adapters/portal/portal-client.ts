import axios, { AxiosInstance } from 'axios';
import { z } from 'zod';
import { CURVES } from '../../domain/curves';
import type { BackupShares } from '../../domain/backup-types';
import { PortalContractError, PortalUnavailableError } from '../../domain/errors';
import { httpFailureOf, NO_WORKER_METRICS, secondsSince, type CallMetrics } from '../../metrics/service-metrics';
import { classifyPortalError } from './portal-error-classifier';
import { NO_PORTAL_RATE_LIMIT, type PortalApi, type PortalDemand, type PortalRateLimiter } from './portal-rate-limiter';
import { BASE64, describeZodError } from '../http/response-validation';

export interface PortalClientConfig {
  /** Enclave MPC API base URL, e.g. https://mpc-client.portalhq.io */
  enclaveUrl: string;
  /** Portal API base URL, e.g. https://api.portalhq.io */
  apiUrl: string;
  timeoutMs: number;
  /** Portal's guide says POST, its API reference PATCH; both are accepted by Portal's servers. */
  storeCipherTextMethod: 'POST' | 'PATCH';
  /** Largest response body accepted, so a runaway response cannot exhaust memory. */
  maxResponseBytes: number;
}

const backupShareSchema = z.object({
  id: z.string().min(1, 'must be a non-empty backup share pair id').max(200),
  share: z.string().min(1, 'must be a non-empty share').regex(BASE64, 'must be base64'),
});
const backupResponseSchema = z.object(
  Object.fromEntries(CURVES.map((curve) => [curve, backupShareSchema])) as Record<
    (typeof CURVES)[number],
    typeof backupShareSchema
  >,
);
// `/v1/recover` answers in the `/v1/generate` shape: one signing share per curve.
const signingSharesSchema = z.object(
  Object.fromEntries(
    CURVES.map((curve) => [curve, z.object({ id: z.string().min(1).max(200), share: z.string().min(1) })]),
  ) as Record<(typeof CURVES)[number], z.ZodObject<{ id: z.ZodString; share: z.ZodString }>>,
);
const cipherTextResponseSchema = z.object({ cipherText: z.string().min(1) });
const clientSchema = z.object({
  id: z.string(),
  // backupWithPortalEnabled: true = Portal-Managed, false = Self-Managed (shared/portal-api.md).
  environment: z.object({ backupWithPortalEnabled: z.boolean().optional() }).partial().nullable().optional(),
  wallets: z
    .array(
      z.object({
        id: z.string(),
        curve: z.string(),
        backupSharePairs: z
          .array(z.object({ id: z.string(), status: z.string(), createdAt: z.string().optional(), backupMethod: z.string().optional() }))
          .default([]),
        signingSharePairs: z
          .array(z.object({ id: z.string(), status: z.string(), createdAt: z.string().optional() }))
          .default([]),
      }),
    )
    .default([]),
});
export type PortalClientInfo = z.infer<typeof clientSchema>;

/** One Portal request; `route` is the template metrics use when the operation holds an id (defaults to the operation). */
interface PortalRequest {
  method: string;
  url: string;
  data?: unknown;
  route?: string;
  /** Which of Portal's rate limits the request counts against (default: the client API's). */
  api?: PortalApi;
}

export const STORED_CLIENT_BACKUP_SHARE = 'STORED_CLIENT_BACKUP_SHARE';
export const STORED_CLIENT = 'STORED_CLIENT';

/** HTTP client for the Portal routes the backup flow uses (shared/portal-api.md). */
export class PortalClient {
  private readonly http: AxiosInstance;

  constructor(
    private readonly config: PortalClientConfig,
    /** Every call by route template and status class (429s apart); none by default. */
    private readonly metrics: CallMetrics = NO_WORKER_METRICS.portal,
    /** Every request, retries included, waits for a slot of Portal's limit here; none by default. */
    private readonly limiter: PortalRateLimiter = NO_PORTAL_RATE_LIMIT,
    /**
     * The signal that ends the caller's work (the running activity's cancellation: cancelled, timed
     * out, worker shutting down): a request still waiting for a slot, or in flight, is dropped, so
     * an attempt Temporal has given up on sends nothing more. None by default.
     */
    private readonly cancellation: () => AbortSignal | undefined = () => undefined,
    /**
     * Whom the caller's requests serve (the running activity's priority: contracts/run-priority.ts):
     * interactive requests go ahead of batch ones at the limiter. Batch by default.
     */
    private readonly demand: () => PortalDemand | Promise<PortalDemand> = () => 'batch',
  ) {
    this.http = axios.create({
      timeout: config.timeoutMs,
      maxContentLength: config.maxResponseBytes,
      maxBodyLength: config.maxResponseBytes,
      // Status handling is ours: every non-2xx becomes a classified domain error.
      validateStatus: (status) => status >= 200 && status < 300,
      // Redirects would resend the bearer key to another host.
      maxRedirects: 0,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    });
  }

  /** Step 1: `POST /v1/backup`. Not idempotent: every call makes new pairs. */
  async backup(apiKey: string, generateResponse: string): Promise<BackupShares> {
    const operation = 'POST /v1/backup';
    const data = await this.callForJson(operation, apiKey, {
      method: 'POST',
      url: `${this.config.enclaveUrl}/v1/backup`,
      data: { generateResponse },
      api: 'enclave',
    });
    const parsed = backupResponseSchema.safeParse(data);
    if (!parsed.success) {
      throw new PortalContractError(`${operation} returned a body that breaks the contract: ${describeZodError(parsed.error)}`);
    }
    const shares = parsed.data;
    if (shares.SECP256K1.id === shares.ED25519.id) {
      throw new PortalContractError(`${operation} returned the same pair id for both curves`);
    }
    // Keep exactly the {id, share} objects Portal returned, in a fixed key order.
    return {
      SECP256K1: { id: shares.SECP256K1.id, share: shares.SECP256K1.share },
      ED25519: { id: shares.ED25519.id, share: shares.ED25519.share },
    };
  }

  /**
   * Recovery: `POST /v1/recover` with the rebuilt `/v1/backup` response. Returns the new signing
   * shares (the `/v1/generate` shape). Not idempotent: every call makes new signing share pairs.
   */
  async recover(apiKey: string, backupResponse: BackupShares): Promise<BackupShares> {
    const operation = 'POST /v1/recover';
    const data = await this.callForJson(operation, apiKey, {
      method: 'POST',
      url: `${this.config.enclaveUrl}/v1/recover`,
      data: { backupResponse: JSON.stringify(backupResponse) },
      api: 'enclave',
    });
    const parsed = signingSharesSchema.safeParse(data);
    if (!parsed.success) {
      throw new PortalContractError(`${operation} returned a body that breaks the contract: ${describeZodError(parsed.error)}`);
    }
    if (parsed.data.SECP256K1.id === parsed.data.ED25519.id) {
      throw new PortalContractError(`${operation} returned the same signing share pair id for both curves`);
    }
    return {
      SECP256K1: { id: parsed.data.SECP256K1.id, share: parsed.data.SECP256K1.share },
      ED25519: { id: parsed.data.ED25519.id, share: parsed.data.ED25519.share },
    };
  }

  /** After a recovery: mark the new signing share pairs as stored by the client. */
  async markSigningPairsStored(apiKey: string, signingSharePairIds: string[]): Promise<void> {
    await this.call('PATCH /api/v3/clients/me/signing-share-pairs', apiKey, {
      method: 'PATCH',
      url: `${this.config.apiUrl}/api/v3/clients/me/signing-share-pairs`,
      data: { status: STORED_CLIENT, signingSharePairIds },
    });
  }

  /** Step 3 (Portal-Managed): store the ciphertext of one pair. Any 2xx is success. */
  async storeCipherText(apiKey: string, pairId: string, cipherText: string): Promise<void> {
    const path = `/api/v3/clients/me/backup-share-pairs/${encodeURIComponent(pairId)}`;
    await this.call(`${this.config.storeCipherTextMethod} ${path}`, apiKey, {
      method: this.config.storeCipherTextMethod,
      url: `${this.config.apiUrl}${path}`,
      data: { clientCipherText: cipherText },
      route: `${this.config.storeCipherTextMethod} /api/v3/clients/me/backup-share-pairs/{pairId}`,
    });
  }

  /** Read-back of a stored ciphertext, for verification and recovery. */
  async getCipherText(apiKey: string, pairId: string): Promise<string> {
    const path = `/api/v3/clients/me/backup-share-pairs/${encodeURIComponent(pairId)}/cipher-text`;
    const operation = `GET ${path}`;
    const data = await this.callForJson(operation, apiKey, {
      method: 'GET',
      url: `${this.config.apiUrl}${path}`,
      route: 'GET /api/v3/clients/me/backup-share-pairs/{pairId}/cipher-text',
    });
    const parsed = cipherTextResponseSchema.safeParse(data);
    if (!parsed.success) {
      throw new PortalContractError(`${operation} returned a body that breaks the contract: ${describeZodError(parsed.error)}`);
    }
    return parsed.data.cipherText;
  }

  /** Step 4: mark the pairs as stored, which completes the backup at Portal. */
  async markBackupPairsStored(apiKey: string, pairIds: string[]): Promise<void> {
    await this.call('PATCH /api/v3/clients/me/backup-share-pairs', apiKey, {
      method: 'PATCH',
      url: `${this.config.apiUrl}/api/v3/clients/me/backup-share-pairs`,
      data: { status: STORED_CLIENT_BACKUP_SHARE, backupSharePairIds: pairIds },
    });
  }

  /** `GET /api/v3/clients/me`: the client's wallets and their backup share pairs. */
  async getClient(apiKey: string): Promise<PortalClientInfo> {
    const operation = 'GET /api/v3/clients/me';
    const data = await this.callForJson(operation, apiKey, { method: 'GET', url: `${this.config.apiUrl}/api/v3/clients/me` });
    const parsed = clientSchema.safeParse(data);
    if (!parsed.success) {
      throw new PortalContractError(`${operation} returned a body that breaks the contract: ${describeZodError(parsed.error)}`);
    }
    return parsed.data;
  }

  /**
   * For routes whose body is read: axios hands back the raw text when a body is not JSON, and a
   * truncated or garbled response (a proxy cut it short) is worth another try; well-formed JSON
   * of the wrong shape is not. Routes whose body is ignored (store, mark) accept any 2xx.
   */
  private async callForJson(operation: string, apiKey: string, request: PortalRequest) {
    const data = await this.call(operation, apiKey, request);
    if (typeof data === 'string' && data.trim().length > 0) {
      throw new PortalUnavailableError(`${operation} returned a body that is not valid JSON; will retry`);
    }
    return data;
  }

  private async call(operation: string, apiKey: string, { route, api = 'client', ...request }: PortalRequest): Promise<unknown> {
    const signal = this.cancellation();
    await this.limiter.acquire(api, signal, await this.demand());
    signal?.throwIfAborted();
    const startedAt = performance.now();
    // Metrics name the route template, never the URL: pair ids stay out of labels.
    const metricRoute = route ?? operation;
    let response;
    try {
      response = await this.http.request({ ...request, ...(signal ? { signal } : {}), headers: { Authorization: `Bearer ${apiKey}` } });
    } catch (error) {
      this.metrics.record({ route: metricRoute, ...httpFailureOf(error), seconds: secondsSince(startedAt) });
      throw classifyPortalError(error, operation);
    }
    this.metrics.record({ route: metricRoute, status: response.status, seconds: secondsSince(startedAt) });
    return response.data;
  }
}
