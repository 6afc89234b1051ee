import type { Pool } from 'pg';
import { BackupDomainError } from '../domain/errors';
import { migrate } from './migrate';

const FIRST_WAIT_MS = 1_000;
const MAX_WAIT_MS = 30_000;

/**
 * Applies pending migrations at process start, waiting out a database that is down or still
 * recovering (retryable errors) with backoff, as a process restarted during an outage must: it
 * comes up when the database does instead of exiting. A permanent error (permissions, a broken
 * migration) is thrown at once.
 */
export async function migrateWhenReachable(
  pool: Pool,
  warn: (message: string) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<{ applied: string[] }> {
  for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
    try {
      return await migrate(pool);
    } catch (error) {
      if (!(error instanceof BackupDomainError && error.retryable)) throw error;
      warn(`${error.message}; trying again in ${Math.round(wait / 1000)} s`);
      await sleep(wait);
    }
  }
}
