import { ConfigError } from '../config/config-error';
import { InvalidIdempotencyKeyError } from '../domain/idempotency-key';
import { InvalidUserIdError } from '../domain/user-id';
import { temporalErrorView } from './temporal-error-views';

/**
 * What a caller is told when the service refuses or cannot do what was asked, by kind. Each kind
 * says once how the CLI exits and which HTTP status the API answers; the CLI (`client/cli.ts`) and
 * the API (`api/api-server.ts`) read them from here and nowhere else. Exit code 2 is "yours to act
 * on" (README: `wait` exits 2 when the backup did not complete); anything that is not a client
 * error is the service's own fault: exit 1, HTTP 500 with no internals.
 */
export const CLIENT_ERROR_KINDS = {
  /** The request cannot work as given (a bad argument, option, id or file); the message says what to fix. */
  invalid: { exitCode: 2, httpStatus: 400 },
  /** The run, batch, drill or rotation named does not exist (or retention deleted it). */
  notFound: { exitCode: 2, httpStatus: 404 },
  /** The caller is authenticated but may not do this (an unnamed API token asking for an operator act). */
  forbidden: { exitCode: 2, httpStatus: 403 },
  /** The action was refused in the run's current state, e.g. `retry` on a backup that is not parked. */
  refused: { exitCode: 2, httpStatus: 409 },
  /** The run ended without the result asked for; the message says why. */
  failed: { exitCode: 2, httpStatus: 409 },
  /** The audit trail failed verification: the message names the first row changed, inserted or removed (or the seal that does not hold). */
  tampered: { exitCode: 4, httpStatus: 409 },
  /** The run is parked waiting for an operator (`wait` says so at once rather than blocking); the message says why and what to do. */
  parked: { exitCode: 3, httpStatus: 409 },
  /** Temporal cannot be reached or did not answer in time: nothing was done; try again (the service's side, so exit 1). */
  unavailable: { exitCode: 1, httpStatus: 503 },
} as const satisfies Record<string, { exitCode: number; httpStatus: number }>;

export type ClientErrorKind = keyof typeof CLIENT_ERROR_KINDS;

/** The base of every error the client library raises for its caller to act on. */
export abstract class ClientError extends Error {
  abstract readonly kind: ClientErrorKind;

  get exitCode(): number {
    return CLIENT_ERROR_KINDS[this.kind].exitCode;
  }

  get httpStatus(): number {
    return CLIENT_ERROR_KINDS[this.kind].httpStatus;
  }

  /** The `error` field of the API's answer. */
  get code(): string {
    return this.name;
  }
}

/** How a caller sees one error: its exit code, HTTP status, code and message. */
export interface ClientErrorView {
  exitCode: number;
  httpStatus: number;
  code: string;
  message: string;
}

/**
 * Errors raised below the client layer that are still the caller's to act on: input checks of
 * `domain/` and `config/` (which cannot depend on the client), and the Temporal client's own
 * answers for a run that does not exist or an update the run refused.
 */
const FOREIGN_KINDS: ReadonlyArray<{ matches: (error: Error) => boolean; kind: ClientErrorKind; message?: (error: Error) => string }> = [
  { matches: (error) => error instanceof InvalidUserIdError || error instanceof InvalidIdempotencyKeyError || error instanceof ConfigError, kind: 'invalid' },
  { matches: (error) => error.name === 'WorkflowUpdateFailedError', kind: 'refused', message: (error) => (error as Error & { cause?: Error }).cause?.message ?? error.message },
];

/**
 * The caller's view of an error, or undefined when it is the service's own fault (exit 1, HTTP
 * 500). Temporal's own answers (a run not found or already ended, a namespace missing, the server
 * unreachable) come with a sentence saying what they mean (temporal-error-views.ts).
 */
export function clientErrorView(error: unknown): ClientErrorView | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error instanceof ClientError) return { exitCode: error.exitCode, httpStatus: error.httpStatus, code: error.code, message: error.message };
  const foreign = FOREIGN_KINDS.find((entry) => entry.matches(error));
  const view = foreign ? { kind: foreign.kind, message: foreign.message?.(error) ?? error.message } : temporalErrorView(error);
  return view && { ...CLIENT_ERROR_KINDS[view.kind], code: ('code' in view && view.code) || error.name, message: view.message };
}
