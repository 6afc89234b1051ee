import type { Pool } from 'pg';
import { BackupDomainError } from '../domain/errors';
import { migrate } from './migrate';
import { realSleep, untilReachable, type Sleep } from '../domain/until-reachable';

/**
 * Applies pending migrations at process start, waiting out a database that is down or still
 * recovering (retryable errors) with backoff, as a process restarted during an outage must: it
 * comes up when the database does instead of exiting. A permanent error (permissions, a broken
 * migration) is thrown at once.
 */
export function migrateWhenReachable(pool: Pool, warn: (message: string) => void, sleep: Sleep = realSleep): Promise<{ applied: string[] }> {
  return untilReachable(() => migrate(pool), {
    transient: (error) => error instanceof BackupDomainError && error.retryable,
    describe: (error) => (error as Error).message,
    warn,
    sleep,
  });
}
