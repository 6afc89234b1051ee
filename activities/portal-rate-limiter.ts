import type { Pool } from 'pg';
import { RateLimiterPostgres, RateLimiterQueue, RateLimiterQueueError } from 'rate-limiter-flexible';
import { classifyDatabaseError } from '../db/postgres-error-classifier';
import { PortalRateLimitBusyError } from '../domain/errors';

/** Portal's two rate-limited route groups (shared/portal-api.md): the Enclave MPC API and the client API. */
export type PortalApi = 'enclave' | 'client';

/** Portal's limits, requests per minute per route group. */
export interface PortalRequestLimits {
  enclavePerMinute: number;
  clientPerMinute: number;
}

/** Waits until one more request to `api` fits Portal's limit; every Portal request goes through it. */
export interface PortalRateLimiter {
  acquire(api: PortalApi): Promise<void>;
}

/** No limit: the default when PORTAL_*_REQUESTS_PER_MINUTE are unset (the batch's pacing is then the only guard). */
export const NO_PORTAL_RATE_LIMIT: PortalRateLimiter = { acquire: async () => undefined };

/** The table of migration 004 (the layout RateLimiterPostgres expects). */
export const PORTAL_RATE_LIMIT_TABLE = 'portal_rate_limits';

/** Requests one process may have waiting for a slot before it refuses (retryable) rather than queue more. */
const MAX_WAITING_PER_PROCESS = 10_000;
/** The one row per route group the queue counts in (the route group is the limiter's key prefix). */
const LIMIT_KEY = 'requests';
/** Longest a request waits for a slot: well inside the 2-minute activity timeout (the step then retries). */
export const MAX_SLOT_WAIT_MS = 60_000;

/**
 * A fixed window of `points` requests per `seconds`, chosen so that no sliding minute (Portal's
 * window) can hold more than `perMinute`: a minute overlaps at most 60/seconds + 1 windows, so
 * points × (60/seconds + 1) ≤ perMinute. Among the windows that divide a minute, the one that lets
 * the most requests through per minute; ties go to the shorter window (smaller bursts).
 * E.g. 200/min → 3 per 1 s (180/min); 50/min → 3 per 4 s (45/min).
 */
export function fixedWindowFor(perMinute: number): { points: number; seconds: number } {
  let best: { points: number; seconds: number; perMinute: number } | undefined;
  for (const seconds of [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]) {
    const windowsPerMinute = 60 / seconds;
    const points = Math.floor(perMinute / (windowsPerMinute + 1));
    if (points < 1) continue;
    const steady = points * windowsPerMinute;
    if (!best || steady > best.perMinute) best = { points, seconds, perMinute: steady };
  }
  if (!best) throw new RangeError(`a limit of ${perMinute} requests per minute is too low to pace (at least 2)`);
  return { points: best.points, seconds: best.seconds };
}

/**
 * One limit shared by every worker process: the count lives in the company's PostgreSQL
 * (rate-limiter-flexible's RateLimiterPostgres, one row per route group), so adding workers cannot
 * exceed it, and retries count like first attempts because every request takes a slot. A request
 * waits in this process's FIFO queue (RateLimiterQueue) until a slot is free. Fails closed: when
 * the database cannot be reached, no Portal request goes out (the step retries).
 *
 * Windows are opened by the clock of the process that opens them; hosts must keep their clocks in
 * sync (NTP), as a skew of δ can shorten a window by δ.
 */
export class SharedPortalRateLimiter implements PortalRateLimiter {
  private readonly queues: Record<PortalApi, RateLimiterQueue>;

  /** `scope` names the limit's rows: processes sharing a scope share the limit (one per Portal account). */
  constructor(pool: Pool, limits: PortalRequestLimits, scope = 'portal') {
    const queueFor = (api: PortalApi, perMinute: number) => {
      const { points, seconds } = fixedWindowFor(perMinute);
      const limiter = new RateLimiterPostgres({
        storeClient: pool,
        storeType: 'pool',
        tableName: PORTAL_RATE_LIMIT_TABLE,
        tableCreated: true,
        keyPrefix: `${scope}-${api}`,
        points,
        duration: seconds,
        clearExpiredByTimeout: false,
      });
      return new RateLimiterQueue(limiter, { maxQueueSize: MAX_WAITING_PER_PROCESS });
    };
    this.queues = { enclave: queueFor('enclave', limits.enclavePerMinute), client: queueFor('client', limits.clientPerMinute) };
  }

  async acquire(api: PortalApi): Promise<void> {
    try {
      // (tokens, key, deadline in Unix seconds): the key must be fixed, or every deadline second
      // would count in a window of its own.
      await this.queues[api].removeTokens(1, LIMIT_KEY, Math.ceil((Date.now() + MAX_SLOT_WAIT_MS) / 1000));
    } catch (error) {
      if (error instanceof RateLimiterQueueError) {
        throw new PortalRateLimitBusyError(
          `no slot of the shared Portal ${api} rate limit came free within ${MAX_SLOT_WAIT_MS / 1000} s in this worker ` +
            `(more requests waiting than the limit lets through); nothing was sent to Portal, will retry`,
        );
      }
      // No Portal request was sent: the step retries once the database answers (or fails it for good).
      throw classifyDatabaseError(error, `take a slot of the shared Portal ${api} rate limit`);
    }
  }
}
