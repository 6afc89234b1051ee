import { DatabaseError } from 'pg';
import { BackupDomainError } from '../domain/errors';
import { redactSecrets } from '../domain/redact';
import { DatabaseRequestError, DatabaseUnavailableError } from './errors';

/** Socket errors (Node's `code`) that mean "the server is not reachable right now". */
const TRANSIENT_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'EAI_AGAIN',
  // A name that does not resolve is usually a DNS hiccup of a host that exists (containers,
  // failover); a misspelt host retries visibly instead of failing a backup for good.
  'ENOTFOUND',
]);

/** node-postgres' own messages for a lost, closed or timed-out connection (it gives them no code). */
const TRANSIENT_CLIENT_MESSAGES = [
  /^Connection terminated/, // unexpectedly / due to connection timeout / during end()
  /^timeout expired$/, // connectionTimeoutMillis while connecting
  /^timeout exceeded when trying to connect$/, // the pool's connectionTimeoutMillis
  /^Query read timeout$/, // query_timeout: the server did not answer in time
  /is not queryable$/, // a client whose connection already failed or closed
];

/** SQLSTATEs (exact) that are worth retrying. Classes 08 and 53 are handled as whole classes. */
const TRANSIENT_SQLSTATES = new Map<string, string>([
  ['40001', 'serialization_failure'],
  ['40P01', 'deadlock_detected'],
  ['55P03', 'lock_not_available'],
  ['57014', 'query_canceled'], // statement_timeout
  ['57P01', 'admin_shutdown'],
  ['57P02', 'crash_shutdown'],
  ['57P03', 'cannot_connect_now'], // starting up, shutting down, in recovery
  ['57P05', 'idle_session_timeout'],
  ['25P03', 'idle_in_transaction_session_timeout'],
  ['58000', 'system_error'],
  ['58030', 'io_error'],
]);

/** Names of the permanent SQLSTATEs this service is likely to meet, to make messages readable. */
const PERMANENT_SQLSTATE_NAMES = new Map<string, string>([
  ['23505', 'unique_violation'],
  ['23502', 'not_null_violation'],
  ['23503', 'foreign_key_violation'],
  ['23514', 'check_violation'],
  ['28000', 'invalid_authorization_specification'],
  ['28P01', 'invalid_password'],
  ['3D000', 'invalid_catalog_name'],
  ['42501', 'insufficient_privilege'],
  ['42P01', 'undefined_table'],
  ['42703', 'undefined_column'],
  ['42601', 'syntax_error'],
]);

const MAX_SERVER_MESSAGE_CHARS = 200;

/**
 * Turns any failure of a PostgreSQL call into `DatabaseUnavailableError` (retryable: the server is
 * down, restarting, overloaded, timed out, or a concurrent transaction got in the way) or
 * `DatabaseRequestError` (permanent: everything else). `operation` names the call in the message.
 *
 * Messages carry the SQLSTATE, its name and the table/constraint/column it concerns, never the
 * parameters, the rows or the connection URL. The server's own message is repeated except for
 * data exceptions (class 22), whose messages quote the offending input value.
 */
export function classifyDatabaseError(error: unknown, operation: string): BackupDomainError {
  if (error instanceof BackupDomainError) return error;

  if (error instanceof DatabaseError || hasSqlState(error)) {
    return classifyServerError(error as DatabaseError, operation);
  }

  const socketCode = socketErrorCode(error);
  if (socketCode && TRANSIENT_SOCKET_CODES.has(socketCode)) {
    return new DatabaseUnavailableError(`${operation} failed: PostgreSQL is unreachable (${socketCode})`, { code: socketCode });
  }
  const message = error instanceof Error ? error.message : String(error);
  if (TRANSIENT_CLIENT_MESSAGES.some((pattern) => pattern.test(message))) {
    return new DatabaseUnavailableError(`${operation} failed: ${message}`);
  }
  return new DatabaseRequestError(`${operation} failed: ${clip(redactSecrets(message))}`, socketCode ? { code: socketCode } : {});
}

function classifyServerError(error: DatabaseError, operation: string): BackupDomainError {
  const code = error.code ?? '';
  const sqlClass = code.slice(0, 2);
  const where = [
    error.table && `table ${error.table}`,
    error.constraint && `constraint ${error.constraint}`,
    error.column && `column ${error.column}`,
  ].filter(Boolean);
  const serverMessage = sqlClass === '22' ? undefined : clip(redactSecrets(error.message));

  if (sqlClass === '08' || sqlClass === '53' || TRANSIENT_SQLSTATES.has(code)) {
    const name = TRANSIENT_SQLSTATES.get(code) ?? (sqlClass === '08' ? 'connection_exception' : 'insufficient_resources');
    const text = `${operation} failed: PostgreSQL ${code} ${name}${serverMessage ? `: ${serverMessage}` : ''}`;
    return new DatabaseUnavailableError(text, { code });
  }
  const name = PERMANENT_SQLSTATE_NAMES.get(code) ?? (sqlClass === '22' ? 'data_exception' : 'error');
  const text =
    `${operation} failed: PostgreSQL ${code || '(no SQLSTATE)'} ${name}` +
    `${where.length ? ` (${where.join(', ')})` : ''}${serverMessage ? `: ${serverMessage}` : ''}`;
  return new DatabaseRequestError(text, code ? { code } : {});
}

/** A server error that lost its class (e.g. re-thrown by a library) still carries a 5-character SQLSTATE. */
function hasSqlState(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && 'severity' in error;
}

/** The socket error code, also from inside an AggregateError (a host with several addresses). */
function socketErrorCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const innerCode = socketErrorCode(inner);
      if (innerCode) return innerCode;
    }
  }
  const cause = (error as { cause?: unknown }).cause;
  return cause && cause !== error ? socketErrorCode(cause) : undefined;
}

function clip(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_SERVER_MESSAGE_CHARS ? `${oneLine.slice(0, MAX_SERVER_MESSAGE_CHARS)}…` : oneLine;
}
