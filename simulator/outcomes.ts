/** What a simulated route answers, and Portal's two error shapes (shared/portal-api.md). */

export type Outcome = { status: number; body?: unknown };

/** Portal's status ids, for the body of a simulated status fault. */
export const STATUS_IDS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  422: 'UNPROCESSABLE_ENTITY',
  500: 'INTERNAL_SERVER_ERROR',
  502: 'BAD_GATEWAY',
  503: 'SERVICE_UNAVAILABLE',
  504: 'GATEWAY_TIMEOUT',
};

/** The Enclave MPC API's error body. */
export function flatError(status: number, id: string, message: string): Outcome {
  return { status, body: { id, message } };
}

/** The client API's error body. */
export function nestedError(status: number, id: string, message: string): Outcome {
  return { status, body: { error: { id, message, code: status } } };
}
