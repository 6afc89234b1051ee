import { AxiosError } from 'axios';
import {
  BackupDomainError,
  PortalAuthError,
  PortalContractError,
  PortalNotFoundError,
  PortalRateLimitedError,
  PortalRequestRejectedError,
  PortalUnavailableError,
} from '../../domain/errors';
import { redactSecrets } from '../../domain/redact';
import { isTransientHttpStatus } from '../http/http-status';

/** Longest server-sent message we repeat, so a huge HTML error page cannot flood a failure. */
const MAX_DETAIL_CHARS = 200;

/**
 * Reads the three error body shapes Portal documents: flat `{id, message}`, nested
 * `{error: {id, message, code}}`, and a plain string (401s). Anything else yields no detail.
 */
export function portalErrorDetail(body: unknown): string | undefined {
  let id: unknown;
  let message: unknown;
  if (typeof body === 'string') {
    message = looksLikeHtml(body) ? 'HTML error page' : body;
  } else if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    const nested = record.error;
    if (nested && typeof nested === 'object') {
      id = (nested as Record<string, unknown>).id;
      message = (nested as Record<string, unknown>).message;
    } else {
      id = record.id;
      message = record.message ?? (typeof nested === 'string' ? nested : undefined);
    }
  }
  const parts = [id, message].filter((p): p is string => typeof p === 'string' && p.trim().length > 0);
  if (parts.length === 0) return undefined;
  const detail = parts.join(': ').replace(/\s+/g, ' ').trim();
  // Redact first: a cut through a secret would leave a piece shorter than the rules catch.
  const redacted = redactSecrets(detail);
  return redacted.length > MAX_DETAIL_CHARS ? `${redacted.slice(0, MAX_DETAIL_CHARS)}…` : redacted;
}

function looksLikeHtml(text: string): boolean {
  return /^\s*<(!doctype|html|head|body)/i.test(text);
}

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: unknown, now: number = Date.now()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** The scheme, host and port a failed request went to (never its path, query or headers), so a network error names where it could not reach. */
function requestOrigin(error: AxiosError): string {
  try {
    return new URL(error.config?.url ?? '', error.config?.baseURL).origin;
  } catch {
    return 'Portal';
  }
}

/**
 * Turns any failure of a Portal call into a domain error. `operation` names the call in the
 * message (e.g. "POST /v1/backup"); the message never includes request headers or bodies.
 */
export function classifyPortalError(error: unknown, operation: string): BackupDomainError {
  if (error instanceof BackupDomainError) return error;
  if (!(error instanceof AxiosError)) {
    const text = error instanceof Error ? error.message : String(error);
    return new PortalUnavailableError(`${operation} failed: ${redactSecrets(text)}`);
  }
  const response = error.response;
  if (!response && /maxContentLength/.test(error.message)) {
    return new PortalContractError(`${operation} returned a body larger than the configured limit`);
  }
  if (!response) {
    const code = error.code ?? 'network error';
    const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT' || /timeout/i.test(error.message);
    const where = requestOrigin(error);
    return new PortalUnavailableError(
      timedOut
        ? `${operation} to ${where} timed out (${code}); Portal may be slow or unreachable`
        : `${operation} to ${where} failed: ${code}; check that PORTAL_ENCLAVE_URL and PORTAL_API_URL name Portal (or the simulator) and that this host reaches it`,
    );
  }
  const status = response.status;
  const detail = portalErrorDetail(response.data);
  const suffix = detail ? ` (${detail})` : '';
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers?.['retry-after']);
    const opts = retryAfterMs === undefined ? {} : { retryAfterMs };
    return new PortalRateLimitedError(`${operation} was rate limited by Portal (429)${suffix}`, opts);
  }
  if (isTransientHttpStatus(status)) {
    return new PortalUnavailableError(`${operation} failed with ${status}${suffix}; will retry`);
  }
  if (status === 401 || status === 403) {
    return new PortalAuthError(
      `${operation} was refused with ${status}${suffix}: check the client API key the credentials source returns for this user`,
    );
  }
  if (status === 404) {
    return new PortalNotFoundError(`${operation} returned 404${suffix}: the client or backup share pair does not exist at Portal`);
  }
  return new PortalRequestRejectedError(`${operation} was rejected with ${status}${suffix}: the request does not match Portal's contract`);
}
