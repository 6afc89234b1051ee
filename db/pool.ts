// node-postgres (`pg`): the most used PostgreSQL client for Node, maintained since 2010, pure
// JavaScript (no native build), with a connection pool and per-connection timeouts.
import { Pool } from 'pg';
import { parseDatabaseUrl } from './database-url';
import { classifyDatabaseError } from './postgres-error-classifier';

export interface DatabasePoolOptions {
  /** Connections at most (default 10). */
  max?: number;
  /** How long to wait for a connection, new or from the pool, before failing (default 5 s). */
  connectionTimeoutMs?: number;
  /**
   * How long the server may run one statement before cancelling it (default 5 s). The client also
   * gives up 1 s later (`query_timeout`), so a server that hangs without answering cannot hold a
   * request forever either.
   */
  statementTimeoutMs?: number;
  /** How long an idle connection stays open (default 30 s). */
  idleTimeoutMs?: number;
  /** Shown in pg_stat_activity (default "mpc-backup"). */
  applicationName?: string;
  /**
   * Called when an idle pooled connection fails (the server restarted or was killed). The pool
   * drops that connection by itself; the error is already classified and carries no secret.
   */
  onIdleConnectionError?: (error: Error) => void;
}

/**
 * A pool on `url` (a postgres:// URL, checked first) with timeouts on every step, so a slow or
 * hung server turns into a retryable `DatabaseUnavailableError` instead of a request that waits
 * forever. Statements that may block on a lock give up after the statement timeout too, and a
 * transaction left open by a crashed caller is ended by the server after 10 s.
 */
export function createDatabasePool(url: string, options: DatabasePoolOptions = {}): Pool {
  parseDatabaseUrl(url);
  const statementTimeoutMs = options.statementTimeoutMs ?? 5_000;
  const pool = new Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    statement_timeout: statementTimeoutMs,
    lock_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 1_000,
    idle_in_transaction_session_timeout: 10_000,
    // TCP keepalive notices a peer that vanished without closing (a crashed host, a cut link).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName ?? 'mpc-backup',
  });
  // Without a listener, a connection's error (server killed or restarted) would crash the process.
  // A connection can fail twice (its socket reset, then its end): the pool's own listener takes the
  // first and drops the connection, and the second found no listener (a worker died so twice in a
  // campaign that SIGKILLed PostgreSQL 18 times). So each connection keeps a listener of its own
  // for as long as it lives, which reports every error once; the pool's only keeps its re-emit from
  // throwing. The pool discards a failed connection; a query on it fails, and is retried.
  const report = (error: Error) => options.onIdleConnectionError?.(classifyDatabaseError(error, 'idle database connection'));
  pool.on('connect', (client) => client.on('error', report));
  pool.on('error', () => undefined);
  return pool;
}
