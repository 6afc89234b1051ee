import { BackupDomainError } from '../domain/errors';

/** Optional facts a database error carries besides its message (never values, never the URL). */
export interface DatabaseErrorDetails {
  /** The PostgreSQL SQLSTATE (e.g. 57P01), or the socket error code (e.g. ECONNREFUSED). */
  code?: string;
}

/**
 * PostgreSQL is unreachable, restarting, overloaded, timed out, or aborted the transaction because
 * of a concurrent one (serialization failure, deadlock): the same request can succeed later.
 */
export class DatabaseUnavailableError extends BackupDomainError {
  readonly retryable = true;
  readonly code?: string;

  constructor(message: string, details: DatabaseErrorDetails = {}) {
    super(message);
    if (details.code !== undefined) this.code = details.code;
  }
}

/**
 * PostgreSQL refused the request for a reason that repeating it will not fix (constraint, missing
 * table, permission, bad input), or answered with rows of a shape this code does not expect.
 */
export class DatabaseRequestError extends BackupDomainError {
  readonly retryable = false;
  readonly code?: string;

  constructor(message: string, details: DatabaseErrorDetails = {}) {
    super(message);
    if (details.code !== undefined) this.code = details.code;
  }
}
