import type { Pool } from 'pg';
import { RateLimiterPostgres, RateLimiterQueue, RateLimiterQueueError } from 'rate-limiter-flexible';
import { classifyDatabaseError } from '../../db/postgres-error-classifier';
import { PortalRateLimitBusyError } from '../../domain/errors';

/** Portal's two rate-limited route groups (shared/portal-api.md): the Enclave MPC API and the client API. */
export type PortalApi = 'enclave' | 'client';

/** Portal's limits, requests per minute per route group. */
export interface PortalRequestLimits {
  enclavePerMinute: number;
  clientPerMinute: number;
}

/** Waits until one more request to `api` fits Portal's limit; every Portal request goes through it. */
export interface PortalRateLimiter {
  /** Resolves when a slot is taken; rejects with `signal`'s reason once it aborts (the slot, if later granted, is wasted). */
  acquire(api: PortalApi, signal?: AbortSignal): Promise<void>;
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
 * Allowance for what can move a request's arrival at Portal against the window that counted it:
 * clock differences between the worker hosts (each opens windows by its own clock) and the way
 * from a granted slot to Portal. A request of one window may land up to this much later.
 */
export const WINDOW_SLACK_MS = 250;

/**
 * A fixed window of `points` requests per `seconds`, chosen so that no sliding minute (Portal's
 * window) can hold more than `perMinute`, even with windows shortened and requests delayed by
 * `slackMs`: a minute then meets at most ⌈(60 + slack) / (seconds − slack)⌉ + 1 windows. Among
 * windows that divide a minute, the one that lets the most requests through; ties go to the shorter
 * window (smaller bursts). E.g. 200/min → 14 per 5 s (168/min); 50/min → 2 per 3 s (40/min).
 */
export function fixedWindowFor(perMinute: number, slackMs = WINDOW_SLACK_MS): { points: number; seconds: number } {
  const slack = slackMs / 1000;
  let best: { points: number; seconds: number; perMinute: number } | undefined;
  for (const seconds of [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60]) {
    if (seconds <= slack) continue;
    const windows = Math.ceil((60 + slack) / (seconds - slack)) + 1;
    const points = Math.floor(perMinute / windows);
    if (points < 1) continue;
    const steady = (points * 60) / seconds;
    if (!best || steady > best.perMinute) best = { points, seconds, perMinute: steady };
  }
  if (!best) throw new RangeError(`a limit of ${perMinute} requests per minute is too low to pace (at least 3)`);
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

  async acquire(api: PortalApi, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    // (tokens, key, deadline in Unix seconds): the key must be fixed, or every deadline second
    // would count in a window of its own.
    const slot = this.queues[api].removeTokens(1, LIMIT_KEY, Math.ceil((Date.now() + MAX_SLOT_WAIT_MS) / 1000));
    try {
      await (signal ? Promise.race([slot, aborted(signal)]) : slot);
    } catch (error) {
      if (signal?.aborted) {
        slot.catch(() => undefined); // nobody waits for it any more
        throw signal.reason;
      }
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

/** Rejects with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
