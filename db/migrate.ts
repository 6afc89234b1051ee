import { join } from 'node:path';
import { Client, type Pool } from 'pg';
import { DatabaseUnavailableError } from './errors';
import { classifyDatabaseError } from './postgres-error-classifier';

/** Plain SQL files `NNN_what.sql`, applied in numeric order, each once. */
export const MIGRATIONS_DIR = join(__dirname, 'migrations');
/** Where the applied migrations are recorded (name, run_on). */
export const MIGRATIONS_TABLE = 'schema_migrations';

export interface MigrateOptions {
  /** Longest a migration statement (or the wait for another process's migrations) may take; default 2 minutes. */
  timeoutMs?: number;
  /** Progress lines ("> Migrating files: …"); silent by default. */
  log?: (line: string) => void;
}

/**
 * Brings the database schema up to date and returns the names of the migrations it applied (none
 * when the schema was current). Safe to call from several processes starting at once: they queue
 * on a PostgreSQL advisory lock, and the later ones find nothing left to apply.
 *
 * node-pg-migrate does the work (well kept, plain .sql files, a migrations table, all pending
 * migrations in one transaction, an order check against what was already applied). Its default
 * lock mode fails a second process with "Another migration is already running"; mode "wait" makes
 * it queue instead (pg_advisory_lock).
 */
export async function migrate(pool: Pool, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const log = options.log ?? (() => undefined);
  // A connection of its own: the pool's statement and query timeouts are sized for requests, not
  // for schema changes or for waiting behind another process's migrations.
  const client = new Client({
    ...pool.options,
    statement_timeout: timeoutMs,
    lock_timeout: timeoutMs,
    query_timeout: timeoutMs + 5_000,
    application_name: 'mpc-backup-migrate',
  });
  // The 'error' event must have a listener or it crashes the process. The flag matters because
  // node-pg-migrate re-throws some failures as plain Errors that no longer say the connection died.
  let connectionLost = false;
  client.on('error', () => (connectionLost = true));
  client.on('end', () => (connectionLost = true));
  try {
    await client.connect();
    // ESM-only package: loaded on first use, which also keeps it out of processes that never migrate.
    const { runner } = await import('node-pg-migrate');
    const applied = await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      // Only NNN_name.sql; anything else in the folder (a README, an editor's file) is not a migration.
      ignorePattern: '(?!\\d+_[a-z0-9_]+\\.sql$).*',
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      checkOrder: true,
      singleTransaction: true,
      advisoryLockMode: 'wait',
      logger: { debug: log, info: log, warn: log, error: log },
    });
    return { applied: applied.map((migration) => migration.name) };
  } catch (error) {
    const classified = classifyDatabaseError(error, 'database migration');
    if (connectionLost && !classified.retryable) {
      throw new DatabaseUnavailableError('database migration failed: the connection to PostgreSQL was lost');
    }
    throw classified;
  } finally {
    await client.end().catch(() => undefined);
  }
}
