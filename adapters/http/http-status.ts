/**
 * The one rule for HTTP answers from the services we call (Portal, the credentials source, the
 * batch's user source, the company's ciphertext endpoint): no answer (network error, timeout),
 * 408, 429 and 5xx are worth another try; any other 4xx is not, and must not be retried blindly.
 */
export function isTransientHttpStatus(status: number | undefined): boolean {
  return status === undefined || status === 408 || status === 429 || status >= 500;
}
