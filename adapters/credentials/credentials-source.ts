import axios, { AxiosError, AxiosInstance } from 'axios';
import { z } from 'zod';
import { CredentialsInvalidError, CredentialsUnavailableError, UnknownUserError } from '../../domain/errors';
import { httpFailureOf, NO_WORKER_METRICS, secondsSince, type CallMetrics } from '../../metrics/service-metrics';
import { isTransientHttpStatus } from '../http/http-status';
import { describeZodError } from '../http/response-validation';

/** What the service needs per user to ask Portal for a backup. Never leaves the activity. */
export interface UserCredentials {
  clientApiKey: string;
  /** The whole `/v1/generate` response, as the JSON string `/v1/backup` expects. */
  generateResponse: string;
}

export interface CredentialsSource {
  load(userId: string): Promise<UserCredentials>;
}

export interface HttpCredentialsSourceConfig {
  /** URL template; `{userId}` is replaced by the URL-encoded user id. */
  urlTemplate: string;
  /** Optional header sent with every request, e.g. `{name: 'Authorization', value: 'Bearer …'}`. */
  authHeader?: { name: string; value: string };
  timeoutMs: number;
}

const credentialsSchema = z.object({
  clientApiKey: z.string().min(1, 'must be a non-empty client API key'),
  generateResponse: z.union([
    z.string().min(2, 'must be the /v1/generate response as a JSON string'),
    z.record(z.string(), z.unknown()),
  ]),
});

/**
 * Loads credentials from the company's backend over HTTP:
 * `GET <template with userId>` → `{clientApiKey, generateResponse}` (generateResponse as the JSON
 * string Portal returned, or the parsed object). 404 means the user is unknown.
 */
export class HttpCredentialsSource implements CredentialsSource {
  private readonly http: AxiosInstance;

  constructor(
    private readonly config: HttpCredentialsSourceConfig,
    /** Every call by status class (no route label: one route, whose URL holds the user id); none by default. */
    private readonly metrics: CallMetrics = NO_WORKER_METRICS.credentials,
  ) {
    this.http = axios.create({ timeout: config.timeoutMs, maxRedirects: 0, maxContentLength: 1024 * 1024 });
  }

  async load(userId: string): Promise<UserCredentials> {
    const url = this.config.urlTemplate.replace('{userId}', encodeURIComponent(userId));
    let data: unknown;
    const startedAt = performance.now();
    try {
      const headers = this.config.authHeader ? { [this.config.authHeader.name]: this.config.authHeader.value } : {};
      const response = await this.http.get(url, { headers });
      this.metrics.record({ route: 'GET {CREDENTIALS_URL}', status: response.status, seconds: secondsSince(startedAt) });
      data = response.data;
    } catch (error) {
      this.metrics.record({ route: 'GET {CREDENTIALS_URL}', ...httpFailureOf(error), seconds: secondsSince(startedAt) });
      throw classify(error, userId);
    }
    // A truncated or garbled body (not JSON: axios hands back the text) is worth another try.
    if (typeof data === 'string' && data.trim().length > 0) {
      throw new CredentialsUnavailableError(`the credentials source answered for user ${userId} with a body that is not valid JSON; will retry`);
    }
    const parsed = credentialsSchema.safeParse(data);
    if (!parsed.success) {
      throw new CredentialsInvalidError(
        `the credentials source returned an unusable record for user ${userId}: ${describeZodError(parsed.error)}`,
      );
    }
    const { clientApiKey, generateResponse } = parsed.data;
    const asString = typeof generateResponse === 'string' ? generateResponse : JSON.stringify(generateResponse);
    if (!isJsonObject(asString)) {
      throw new CredentialsInvalidError(`the stored /v1/generate response for user ${userId} is not a JSON object`);
    }
    return { clientApiKey, generateResponse: asString };
  }
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  } catch {
    return false;
  }
}

function classify(error: unknown, userId: string): Error {
  if (!(error instanceof AxiosError)) {
    return new CredentialsUnavailableError(`loading credentials for user ${userId} failed: ${String(error)}`);
  }
  const status = error.response?.status;
  if (status === 404) {
    return new UnknownUserError(`unknown user ${userId}: the credentials source has no client API key for this user`);
  }
  if (isTransientHttpStatus(status)) {
    return new CredentialsUnavailableError(
      `loading credentials for user ${userId} failed (${status ?? error.code ?? 'network error'}); will retry`,
    );
  }
  return new CredentialsInvalidError(
    `the credentials source refused the request for user ${userId} with ${status}: check CREDENTIALS_URL and CREDENTIALS_AUTH_HEADER`,
  );
}
