import axios, { AxiosError, type AxiosInstance } from 'axios';
import type { BackupShares } from '../../domain/backup-types';
import { SigningShareHandoverRejectedError, SigningShareHandoverUnavailableError } from '../../domain/errors';
import { isTransientHttpStatus } from './http-status';

/**
 * Where a recovery's new signing shares go: the company's backend, which keeps them for the user
 * (as it kept the `/v1/generate` response) and hands them out through the credentials source.
 * Called before the new signing share pairs are marked at Portal, so they are never lost.
 */
export interface SigningShareHandover {
  handOver(userId: string, signingShares: BackupShares): Promise<void>;
}

export interface HttpSigningShareHandoverConfig {
  /** URL template with `{userId}`; `PUT` with `{signingShares: "<the /v1/recover response as a JSON string>"}`. */
  urlTemplate: string;
  authHeader?: { name: string; value: string };
  timeoutMs: number;
}

/**
 * `PUT {SIGNING_SHARES_URL}` to the company's backend. Any 2xx is taken; the same shares sent
 * again (a retry after a lost answer) must be accepted by the backend as a no-op. Messages carry
 * the status only, never the body (it could echo the shares).
 */
export class HttpSigningShareHandover implements SigningShareHandover {
  private readonly http: AxiosInstance;

  constructor(private readonly config: HttpSigningShareHandoverConfig) {
    // No redirects: they would resend the shares and the header to another place.
    this.http = axios.create({ timeout: config.timeoutMs, maxRedirects: 0, maxContentLength: 64 * 1024 });
  }

  async handOver(userId: string, signingShares: BackupShares): Promise<void> {
    const url = this.config.urlTemplate.replace('{userId}', encodeURIComponent(userId));
    const headers = this.config.authHeader ? { [this.config.authHeader.name]: this.config.authHeader.value } : {};
    try {
      await this.http.put(url, { signingShares: JSON.stringify(signingShares) }, { headers });
    } catch (error) {
      const status = error instanceof AxiosError ? error.response?.status : undefined;
      const code = error instanceof AxiosError ? error.code : undefined;
      if (isTransientHttpStatus(status)) {
        throw new SigningShareHandoverUnavailableError(
          `handing the new signing shares of user ${userId} to the backend failed (${status ?? code ?? 'network error'}); will retry`,
        );
      }
      throw new SigningShareHandoverRejectedError(
        `the backend refused the new signing shares of user ${userId} with ${status}: fix SIGNING_SHARES_URL, ` +
          'SIGNING_SHARES_AUTH_HEADER or the backend, then retry the recovery (the shares stay sealed in the recovery until then)',
      );
    }
  }
}
