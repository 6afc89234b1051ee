import type { Pool } from 'pg';
import { classifyDatabaseError } from '../../db/postgres-error-classifier';
import { PortalRateLimitBusyError } from '../../domain/errors';
import type { PortalDemand } from '../../contracts/run-priority';

export type { PortalDemand } from '../../contracts/run-priority';

/** Portal's two rate-limited route groups (shared/portal-api.md): the Enclave MPC API and the client API. */
export type PortalApi = 'enclave' | 'client';

/** Portal's limits, requests per minute per route group. */
export interface PortalRequestLimits {
  enclavePerMinute: number;
  clientPerMinute: number;
}

/**
 * Waits until one more request to `api` fits Portal's limit; every Portal request goes through it.
 *
 * Contract: a request goes out only after `acquire` resolves, and every request (retries too)
 * takes a slot. An `interactive` request (someone waits for it: contracts/run-priority.ts) is
 * granted ahead of every `batch` request waiting in this process, and a batch request never takes
 * the slots of a window kept for interactive ones; both classes count in the one limit, so what
 * interactive requests take comes out of the batch's share and the total never exceeds the limit.
 * Fails closed: when the count cannot be read, `acquire` rejects and nothing may be sent.
 */
export interface PortalRateLimiter {
  /**
   * Resolves when a slot is taken; rejects with `signal`'s reason once it aborts (the slot, if
   * later granted, is wasted). `demand` defaults to batch, the class without precedence.
   */
  acquire(api: PortalApi, signal?: AbortSignal, demand?: PortalDemand): Promise<void>;
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
 * Share of a window's slots a batch request may not take while interactive requests are about
 * (INTERACTIVE_DEMAND_HOLD_MS): they are kept for interactive requests, so one arriving mid-window
 * finds a slot although the batch has filled the rest. Rounded down: a window of fewer than 10
 * slots keeps none, and interactive requests there rely on going first.
 */
export const INTERACTIVE_RESERVE_SHARE = 0.1;
/**
 * How long after an interactive request the reserve holds, in every process: with no interactive
 * demand the batch has the whole window; when it rises, the batch's share shrinks by the reserve
 * and by whatever interactive requests take beyond it.
 */
export const INTERACTIVE_DEMAND_HOLD_MS = 30_000;
/**
 * When a window ends, a batch request waiting in any process tries again this much later than an
 * interactive one: the interactive requests waiting anywhere take the new window's first slots.
 * (Windows open with their first request, so the delay costs the batch no capacity.)
 */
export const BATCH_RETRY_DEFER_MS = 100;
/** The shortest wait before a refused request tries again (a window that has just ended). */
const MIN_RETRY_MS = 5;

/**
 * Takes one slot of the current window if fewer than the class's cap are taken, opening a new
 * window when the last has ended; one statement, so the processes' takes cannot interleave.
 * Interactive requests ($7 true) may take all the window's points ($8) and mark interactive demand
 * (row $5, until now + $6); batch requests may take the points less the reserve ($4) while that
 * mark holds, else all of them. `granted_until` is set only when a slot was taken; `window_ends` is
 * when the current window ends. The row layout and key are rate-limiter-flexible's (migration 004;
 * windows end at `expire`, in ms since the epoch): workers of an earlier build count in the same
 * rows during a rolling deploy.
 */
const TAKE_SLOT_SQL = `
  WITH marked AS (
    INSERT INTO ${PORTAL_RATE_LIMIT_TABLE} (key, points, expire) SELECT $5::varchar, 0, $2::bigint + $6::bigint WHERE $7::boolean
    ON CONFLICT (key) DO UPDATE SET expire = EXCLUDED.expire
    RETURNING 1
  ),
  cap AS (
    SELECT CASE
      WHEN $7::boolean THEN $8::integer
      WHEN EXISTS (SELECT 1 FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $5::varchar AND expire > $2::bigint) THEN $4::integer
      ELSE $8::integer
    END AS points
  ),
  taken AS (
    INSERT INTO ${PORTAL_RATE_LIMIT_TABLE} AS t (key, points, expire) VALUES ($1::varchar, 1, $2::bigint + $3::bigint)
    ON CONFLICT (key) DO UPDATE SET
      points = CASE WHEN t.expire IS NULL OR t.expire <= $2::bigint THEN 1 ELSE t.points + 1 END,
      expire = CASE WHEN t.expire IS NULL OR t.expire <= $2::bigint THEN $2::bigint + $3::bigint ELSE t.expire END
    WHERE t.expire IS NULL OR t.expire <= $2::bigint OR t.points < (SELECT points FROM cap)
    RETURNING expire
  )
  SELECT (SELECT expire FROM taken) AS granted_until,
         (SELECT expire FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1::varchar) AS window_ends`;

/**
 * One limit shared by every worker process: the count lives in the company's PostgreSQL (one row
 * per route group, fixed windows: fixedWindowFor), so adding workers cannot exceed it, and retries
 * count like first attempts because every request takes a slot. Interactive requests go first
 * (contracts/run-priority.ts): in this process, a request waits in its class's FIFO queue and the
 * interactive queue is always served first; across processes, a batch request may not take the
 * window's reserve (INTERACTIVE_RESERVE_SHARE) while interactive requests are about
 * (INTERACTIVE_DEMAND_HOLD_MS), and tries a new window after interactive ones do
 * (BATCH_RETRY_DEFER_MS). Both classes take from the one count, so the more interactive requests
 * there are, the fewer slots are left for the batch, and together they never exceed the limit.
 * Fails closed: when the database cannot be reached, no Portal request goes out (the step retries).
 *
 * Windows are opened by the clock of the process that opens them; hosts must keep their clocks in
 * sync (NTP), as a skew of δ can shorten a window by δ.
 */
export class SharedPortalRateLimiter implements PortalRateLimiter {
  private readonly lanes: Record<PortalApi, SlotLane>;

  /**
   * `scope` names the limit's rows: processes sharing a scope share the limit (one per Portal
   * account). `interactiveReserveShare` (default INTERACTIVE_RESERVE_SHARE) must be the same in
   * every process of a scope.
   */
  constructor(pool: Pool, limits: PortalRequestLimits, scope = 'portal', options: { interactiveReserveShare?: number } = {}) {
    const share = options.interactiveReserveShare ?? INTERACTIVE_RESERVE_SHARE;
    if (!(share >= 0 && share < 1)) throw new RangeError(`the interactive reserve must be a share from 0 to below 1, not ${share}`);
    const laneFor = (api: PortalApi, perMinute: number) => {
      const { points, seconds } = fixedWindowFor(perMinute);
      // rate-limiter-flexible's key (`<prefix>:<key>`), so that earlier builds count in the same row.
      return new SlotLane(pool, api, `${scope}-${api}:${LIMIT_KEY}`, points, points - Math.floor(points * share), seconds * 1000);
    };
    this.lanes = { enclave: laneFor('enclave', limits.enclavePerMinute), client: laneFor('client', limits.clientPerMinute) };
  }

  acquire(api: PortalApi, signal?: AbortSignal, demand: PortalDemand = 'batch'): Promise<void> {
    return this.lanes[api].acquire(signal, demand === 'interactive' ? 'interactive' : 'batch');
  }
}

interface Waiter {
  demand: PortalDemand;
  /** Unix ms after which the request gives up (MAX_SLOT_WAIT_MS after it asked). */
  deadline: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** One route group's limit in this process: the two queues and the one loop that takes slots for them, head first. */
class SlotLane {
  private readonly waiting: Record<PortalDemand, Waiter[]> = { interactive: [], batch: [] };
  private pumping = false;
  /** Ends the loop's wait for a new window early; set while it waits, with the class it waits for. */
  private wake: { demand: PortalDemand; now: () => void } | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly api: PortalApi,
    private readonly key: string,
    private readonly points: number,
    private readonly batchPoints: number,
    private readonly windowMs: number,
  ) {}

  acquire(signal: AbortSignal | undefined, demand: PortalDemand): Promise<void> {
    signal?.throwIfAborted();
    if (this.waiting.interactive.length + this.waiting.batch.length >= MAX_WAITING_PER_PROCESS) {
      return Promise.reject(this.busy());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { demand, deadline: Date.now() + MAX_SLOT_WAIT_MS, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          if (this.remove(waiter)) reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiting[demand].push(waiter);
      // The loop waits for a window because a batch request did not fit: an interactive one may.
      if (demand === 'interactive' && this.wake?.demand === 'batch') this.wake.now();
      if (!this.pumping) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        const head = this.waiting.interactive[0] ?? this.waiting.batch[0];
        if (!head) return;
        if (Date.now() > head.deadline + BATCH_RETRY_DEFER_MS) {
          this.settle(head, this.busy());
          continue;
        }
        let answer: { granted: boolean; msBeforeNext: number };
        try {
          answer = await this.take(head.demand);
        } catch (error) {
          // No Portal request may go out: every request waiting here fails (retryable), the steps retry.
          const failure = classifyDatabaseError(error, `take a slot of the shared Portal ${this.api} rate limit`);
          for (const waiter of [...this.waiting.interactive, ...this.waiting.batch]) this.settle(waiter, failure);
          continue;
        }
        if (answer.granted) {
          // A request cancelled meanwhile leaves its slot unused (no other class's cap was checked for it).
          this.settle(head);
          continue;
        }
        // An interactive request that came while a batch one was refused may still fit: try it now.
        if (head.demand === 'batch' && this.waiting.interactive.length > 0) continue;
        const untilWindowMs = Math.max(MIN_RETRY_MS, answer.msBeforeNext);
        // The deadline is for the window: a batch request's short deferral does not count against it.
        if (Date.now() + untilWindowMs > head.deadline) {
          this.settle(head, this.busy());
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => this.wake?.now(), untilWindowMs + (head.demand === 'batch' ? BATCH_RETRY_DEFER_MS : 0));
          this.wake = {
            demand: head.demand,
            now: () => {
              clearTimeout(timer);
              this.wake = undefined;
              resolve();
            },
          };
        });
      }
    } finally {
      this.pumping = false;
    }
  }

  private async take(demand: PortalDemand): Promise<{ granted: boolean; msBeforeNext: number }> {
    const now = Date.now();
    const { rows } = await this.pool.query<{ granted_until: string | null; window_ends: string | null }>(TAKE_SLOT_SQL, [
      this.key,
      now,
      this.windowMs,
      this.batchPoints,
      `${this.key}:interactive`,
      INTERACTIVE_DEMAND_HOLD_MS,
      demand === 'interactive',
      this.points,
    ]);
    const row = rows[0];
    if (row?.granted_until !== null && row?.granted_until !== undefined) return { granted: true, msBeforeNext: 0 };
    const endsAt = row?.window_ends === null || row?.window_ends === undefined ? now : Number(row.window_ends);
    return { granted: false, msBeforeNext: endsAt - Date.now() };
  }

  /** Takes `waiter` out of its queue and resolves it (or rejects it with `error`); false if it had already left. */
  private settle(waiter: Waiter, error?: unknown): boolean {
    if (!this.remove(waiter)) return false;
    if (error === undefined) waiter.resolve();
    else waiter.reject(error);
    return true;
  }

  private remove(waiter: Waiter): boolean {
    const queue = this.waiting[waiter.demand];
    const at = queue.indexOf(waiter);
    if (at < 0) return false;
    queue.splice(at, 1);
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    return true;
  }

  private busy(): PortalRateLimitBusyError {
    return new PortalRateLimitBusyError(
      `no slot of the shared Portal ${this.api} rate limit came free within ${MAX_SLOT_WAIT_MS / 1000} s in this worker ` +
        `(more requests waiting than the limit lets through); nothing was sent to Portal, will retry`,
    );
  }
}
