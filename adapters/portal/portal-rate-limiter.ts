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
 * the slots kept for interactive ones; both classes count in the one limit, so what
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
/** Longest a request waits for a slot: well inside the 2-minute activity timeout (the step then retries). */
export const MAX_SLOT_WAIT_MS = 60_000;
/** The shortest wait before a refused request asks again. */
const MIN_RETRY_MS = 5;

/**
 * Allowance for a request's way from its granted slot to Portal: the grant's answer, the worker's
 * event loop (busy workers lag by hundreds of milliseconds), the connection. A request granted at
 * t reaches Portal by t + this, so the requests Portal counts in one minute were granted within
 * a minute and this much. (Grants are timed by the database's clock, one clock for every worker
 * host, so host clocks do not enter.)
 */
export const GRANT_TO_PORTAL_SLACK_MS = 1_000;
/** Requests a route group may send at once beyond its steady pace, as a share of its limit. */
export const BURST_SHARE = 0.02;

/** A route group's pace: one request per `intervalUs` on average, `burst` more at once after a lull. */
export interface Pacing {
  intervalUs: number;
  burst: number;
  /** The steady rate the pace lets through, requests per minute. */
  perMinute: number;
}

/**
 * The pace (GCRA, the generic cell rate algorithm) that no sliding minute at Portal can overfill:
 * n requests granted within t of each other satisfy n ≤ 1 + burst + t / interval, so with t = a
 * minute and GRANT_TO_PORTAL_SLACK_MS, the interval is (60 s + slack) / (limit − 1 − burst).
 * Rounded up to a microsecond. E.g. 1,200/min → 24 at once, then one per 51.9 ms (1,155/min, 96 %);
 * 50/min → one per 1.27 s (47/min). (The fixed windows it replaced let through 84–87 %.)
 */
export function pacingFor(perMinute: number, options: { burst?: number } = {}): Pacing {
  const burst = options.burst ?? Math.floor(perMinute * BURST_SHARE);
  if (!(Number.isInteger(perMinute) && perMinute - 1 - burst >= 1 && burst >= 0)) {
    throw new RangeError(`a limit of ${perMinute} requests per minute is too low to pace with a burst of ${burst} (at least ${burst + 2})`);
  }
  const intervalUs = Math.ceil(((60_000 + GRANT_TO_PORTAL_SLACK_MS) * 1000) / (perMinute - 1 - burst));
  return { intervalUs, burst, perMinute: 60e6 / intervalUs };
}

/**
 * The fixed window that builds before the pace (GCRA) counted in, on the route group's
 * `:requests` row: this build adds each request it sends to that row too, so that workers of an
 * earlier build still running during a rolling deploy count this build's requests and hold back.
 * Remove once no worker of such a build runs (docs/performance.md, "The shared limit").
 */
export function legacyFixedWindowFor(perMinute: number, slackMs = 250): { points: number; seconds: number } {
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
  return best ? { points: best.points, seconds: best.seconds } : { points: 1, seconds: 60 };
}

/**
 * Share of a route group's burst a batch request may not use while interactive requests are about
 * (INTERACTIVE_DEMAND_HOLD_MS): those slots are kept for interactive requests, so one arriving while
 * the batch keeps the pace full is sent at once. Rounded down: a burst of fewer than 10 slots keeps
 * none, and interactive requests there rely on going first.
 */
export const INTERACTIVE_RESERVE_SHARE = 0.1;
/**
 * How long after an interactive request the reserve holds, in every process: with no interactive
 * demand the batch has the whole burst; when it rises, the batch waits for what interactive
 * requests leave of the one pace.
 */
export const INTERACTIVE_DEMAND_HOLD_MS = 30_000;

/** The database's clock in microseconds, read where it is used (after any row lock is had). */
const DB_NOW_US = '(extract(epoch FROM clock_timestamp()) * 1000000)::bigint';

/**
 * Takes one slot of a route group's pace, in one statement, so the processes' takes cannot
 * interleave. The `$1` row's `expire` is the pace's theoretical arrival time (TAT, µs on the
 * database's clock): a request may go when TAT − now ≤ its tolerance, and moves TAT one interval
 * ($5) on from max(TAT, now). Interactive requests ($4 true) have the whole burst as tolerance ($6)
 * and mark interactive demand (row $2, until now + $3 ms); batch requests have the burst less the
 * reserve ($7) while that mark holds, else the whole burst. A request granted is also counted in the
 * legacy fixed-window row ($8, windows of $9 ms: legacyFixedWindowFor). Answers `granted` and, when
 * not, `wait_us` until it would be. Rows are in migration 004's layout (key, points, expire).
 */
const TAKE_SLOT_SQL = `
  WITH clock AS (SELECT ${DB_NOW_US} AS now_us),
  marked AS (
    INSERT INTO ${PORTAL_RATE_LIMIT_TABLE} (key, points, expire) SELECT $2::varchar, 0, now_us / 1000 + $3::bigint FROM clock WHERE $4::boolean
    ON CONFLICT (key) DO UPDATE SET expire = EXCLUDED.expire
    RETURNING 1
  ),
  allowance AS (
    SELECT CASE
      WHEN $4::boolean THEN $6::bigint
      WHEN EXISTS (SELECT 1 FROM ${PORTAL_RATE_LIMIT_TABLE}, clock WHERE key = $2::varchar AND expire > now_us / 1000) THEN $7::bigint
      ELSE $6::bigint
    END AS tolerance_us
  ),
  taken AS (
    INSERT INTO ${PORTAL_RATE_LIMIT_TABLE} AS t (key, points, expire) SELECT $1::varchar, 0, now_us + $5::bigint FROM clock
    ON CONFLICT (key) DO UPDATE SET expire = GREATEST(t.expire, ${DB_NOW_US}) + $5::bigint
    WHERE GREATEST(t.expire, ${DB_NOW_US}) - ${DB_NOW_US} <= (SELECT tolerance_us FROM allowance)
    RETURNING 1
  ),
  counted AS (
    INSERT INTO ${PORTAL_RATE_LIMIT_TABLE} AS f (key, points, expire) SELECT $8::varchar, 1, now_us / 1000 + $9::bigint FROM clock WHERE EXISTS (SELECT 1 FROM taken)
    ON CONFLICT (key) DO UPDATE SET
      points = CASE WHEN f.expire IS NULL OR f.expire <= EXCLUDED.expire - $9::bigint THEN 1 ELSE f.points + 1 END,
      expire = CASE WHEN f.expire IS NULL OR f.expire <= EXCLUDED.expire - $9::bigint THEN EXCLUDED.expire ELSE f.expire END
    RETURNING 1
  )
  SELECT EXISTS (SELECT 1 FROM taken) AS granted,
         (SELECT expire FROM ${PORTAL_RATE_LIMIT_TABLE} WHERE key = $1::varchar) - (SELECT now_us FROM clock) - (SELECT tolerance_us FROM allowance) AS wait_us`;

/**
 * One limit shared by every worker process: the pace lives in the company's PostgreSQL (one row per
 * route group: pacingFor), so adding workers cannot exceed it, and retries count like first
 * attempts because every request takes a slot. Interactive requests go first
 * (contracts/run-priority.ts): in this process, a request waits in its class's FIFO queue and the
 * interactive queue is always served first; across processes, a batch request may not use the
 * burst's reserve (INTERACTIVE_RESERVE_SHARE) while interactive requests are about
 * (INTERACTIVE_DEMAND_HOLD_MS), so an interactive request of any process finds a slot at once.
 * Both classes take from the one pace, so the more interactive requests there are, the fewer slots
 * are left for the batch, and together they never exceed the limit. Fails closed: when the
 * database cannot be reached, no Portal request goes out (the step retries).
 */
export class SharedPortalRateLimiter implements PortalRateLimiter {
  private readonly lanes: Record<PortalApi, SlotLane>;

  /**
   * `scope` names the limit's rows: processes sharing a scope share the limit (one per Portal
   * account). `interactiveReserveShare` (default INTERACTIVE_RESERVE_SHARE) and `burst` (default
   * BURST_SHARE of the limit) must be the same in every process of a scope.
   */
  constructor(pool: Pool, limits: PortalRequestLimits, scope = 'portal', options: { interactiveReserveShare?: number; burst?: number } = {}) {
    const share = options.interactiveReserveShare ?? INTERACTIVE_RESERVE_SHARE;
    if (!(share >= 0 && share < 1)) throw new RangeError(`the interactive reserve must be a share from 0 to below 1, not ${share}`);
    const laneFor = (api: PortalApi, perMinute: number) => {
      const pacing = pacingFor(perMinute, options.burst === undefined ? {} : { burst: options.burst });
      const reserved = Math.floor(share * (pacing.burst + 1));
      const legacy = legacyFixedWindowFor(perMinute);
      // rate-limiter-flexible's key prefix (`<prefix>:<key>`), as the earlier builds named their rows.
      return new SlotLane(pool, api, `${scope}-${api}`, {
        intervalUs: pacing.intervalUs,
        toleranceUs: pacing.burst * pacing.intervalUs,
        batchToleranceUs: (pacing.burst - reserved) * pacing.intervalUs,
        legacyWindowMs: legacy.seconds * 1000,
      });
    };
    this.lanes = { enclave: laneFor('enclave', limits.enclavePerMinute), client: laneFor('client', limits.clientPerMinute) };
  }

  acquire(api: PortalApi, signal?: AbortSignal, demand: PortalDemand = 'batch'): Promise<void> {
    return this.lanes[api].acquire(signal, demand === 'interactive' ? 'interactive' : 'batch');
  }
}

/** One route group's pace, as SlotLane passes it to TAKE_SLOT_SQL. */
interface LanePace {
  intervalUs: number;
  toleranceUs: number;
  batchToleranceUs: number;
  legacyWindowMs: number;
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
  /** Ends the loop's wait for the pace early; set while it waits, with the class it waits for. */
  private wake: { demand: PortalDemand; now: () => void } | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly api: PortalApi,
    /** The route group's row prefix; its rows are `<prefix>:pace`, `:requests` (legacy) and `:requests:interactive`. */
    private readonly prefix: string,
    private readonly pace: LanePace,
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
      // The loop waits because a batch request did not fit: an interactive one may (the reserve).
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
        if (Date.now() > head.deadline) {
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
        const untilFitsMs = Math.max(MIN_RETRY_MS, answer.msBeforeNext);
        if (Date.now() + untilFitsMs > head.deadline) {
          this.settle(head, this.busy());
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => this.wake?.now(), untilFitsMs);
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
    const { rows } = await this.pool.query<{ granted: boolean; wait_us: string | null }>(TAKE_SLOT_SQL, [
      `${this.prefix}:pace`,
      `${this.prefix}:requests:interactive`,
      INTERACTIVE_DEMAND_HOLD_MS,
      demand === 'interactive',
      this.pace.intervalUs,
      this.pace.toleranceUs,
      this.pace.batchToleranceUs,
      `${this.prefix}:requests`,
      this.pace.legacyWindowMs,
    ]);
    const row = rows[0];
    if (row?.granted) return { granted: true, msBeforeNext: 0 };
    return { granted: false, msBeforeNext: row?.wait_us === null || row?.wait_us === undefined ? 0 : Math.ceil(Number(row.wait_us) / 1000) };
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
