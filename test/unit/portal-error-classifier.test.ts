import { AxiosError, AxiosHeaders, type AxiosResponse } from 'axios';
import { describe, expect, it } from 'vitest';
import { classifyPortalError, parseRetryAfter, portalErrorDetail } from '../../adapters/portal/portal-error-classifier';
import {
  PortalAuthError,
  PortalContractError,
  PortalNotFoundError,
  PortalRateLimitedError,
  PortalRequestRejectedError,
  PortalUnavailableError,
} from '../../domain/errors';

function httpError(status: number, data: unknown, headers: Record<string, string> = {}): AxiosError {
  const response = { status, data, headers, statusText: '', config: { headers: new AxiosHeaders() } } as AxiosResponse;
  return new AxiosError(`Request failed with status code ${status}`, 'ERR_BAD_RESPONSE', undefined, undefined, response);
}

describe('portalErrorDetail reads all three documented error shapes', () => {
  it('flat {id, message}', () => expect(portalErrorDetail({ id: 'BAD_REQUEST', message: 'nope' })).toBe('BAD_REQUEST: nope'));
  it('nested {error: {id, message, code}}', () =>
    expect(portalErrorDetail({ error: { id: 'NOT_FOUND', message: 'gone', code: 404 } })).toBe('NOT_FOUND: gone'));
  it('plain string', () => expect(portalErrorDetail('Authorization header is missing')).toBe('Authorization header is missing'));
  it('HTML pages are named, not repeated', () => expect(portalErrorDetail('<!DOCTYPE html><html>…')).toBe('HTML error page'));
  it('echoed bearer keys are redacted', () =>
    expect(portalErrorDetail('bad key Bearer abc123-secret')).toBe('bad key Bearer [redacted]'));
  it('long bodies are cut', () => expect(portalErrorDetail('x'.repeat(5000))!.length).toBeLessThanOrEqual(201));
  it('a share straddling the cut is redacted whole, not cut into a piece the rules miss', () => {
    const share = Buffer.from('s'.repeat(90)).toString('base64url');
    const detail = portalErrorDetail(`${'x '.repeat(90)}${share}`)!;
    expect(detail).toContain('[redacted');
    for (let at = 0; at + 12 <= share.length; at += 1) expect(detail).not.toContain(share.slice(at, at + 12));
  });
  it('unknown shapes give no detail', () => expect(portalErrorDetail({ foo: 1 })).toBeUndefined());
});

describe('classifyPortalError', () => {
  it.each([
    [500, PortalUnavailableError],
    [502, PortalUnavailableError],
    [503, PortalUnavailableError],
    [408, PortalUnavailableError],
    [429, PortalRateLimitedError],
    [401, PortalAuthError],
    [403, PortalAuthError],
    [404, PortalNotFoundError],
    [400, PortalRequestRejectedError],
    [422, PortalRequestRejectedError],
  ])('%i → %o', (status, type) => {
    const error = classifyPortalError(httpError(status, { id: 'X', message: 'y' }), 'POST /v1/backup');
    expect(error).toBeInstanceOf(type);
    expect(error.retryable).toBe(type === PortalUnavailableError || type === PortalRateLimitedError);
    expect(error.message).toContain('POST /v1/backup');
  });

  it('carries Retry-After from a 429', () => {
    const error = classifyPortalError(httpError(429, '', { 'retry-after': '7' }), 'PATCH x');
    expect(error.retryAfterMs).toBe(7000);
  });

  it('network errors and timeouts are retryable', () => {
    const timeout = new AxiosError('timeout of 2000ms exceeded', 'ECONNABORTED');
    expect(classifyPortalError(timeout, 'GET x')).toBeInstanceOf(PortalUnavailableError);
    expect(classifyPortalError(timeout, 'GET x').message).toMatch(/timed out/);
    expect(classifyPortalError(new AxiosError('connect ECONNREFUSED', 'ECONNREFUSED'), 'GET x').message).toContain('ECONNREFUSED');
  });

  it('a network error names the origin it could not reach (never the path or query) and the variables to check', () => {
    const config = { url: 'https://mpc-client.portalhq.io/v1/backup?token=abc', headers: new AxiosHeaders() };
    const error = classifyPortalError(new AxiosError('getaddrinfo ENOTFOUND mpc-client.portalhq.io', 'ENOTFOUND', config), 'POST /v1/backup');
    expect(error.message).toBe(
      'POST /v1/backup to https://mpc-client.portalhq.io failed: ENOTFOUND; check that PORTAL_ENCLAVE_URL and PORTAL_API_URL name Portal (or the simulator) and that this host reaches it',
    );
    const timeout = classifyPortalError(new AxiosError('timeout of 2000ms exceeded', 'ECONNABORTED', config), 'POST /v1/backup');
    expect(timeout.message).toBe('POST /v1/backup to https://mpc-client.portalhq.io timed out (ECONNABORTED); Portal may be slow or unreachable');
  });

  it('an oversized body is a contract error, not a retry', () => {
    const error = new AxiosError('maxContentLength size of 1024 exceeded', 'ERR_BAD_RESPONSE');
    expect(classifyPortalError(error, 'POST /v1/backup')).toBeInstanceOf(PortalContractError);
  });

  it('401 tells what to fix and never repeats the key', () => {
    const error = classifyPortalError(httpError(401, 'Incorrect API key format'), 'POST /v1/backup');
    expect(error.message).toContain('check the client API key');
    expect(error.message).not.toMatch(/Bearer [^[]/);
  });
});

describe('parseRetryAfter', () => {
  it('seconds', () => expect(parseRetryAfter('3')).toBe(3000));
  it('an HTTP date', () => expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000));
  it('absent or unreadable', () => {
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
