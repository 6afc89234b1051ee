/**
 * The paced fleet run, the shape batchBackup, restoreDrill and rotateKeys share: users paged from a
 * source (a list or the company backend's paged route), started at a fixed pace with bounded
 * catch-up, pause/resume/cancel, a report of counts and rate, and history kept bounded by
 * continue-as-new. Each workflow keeps what it does per user; the rules below are written once.
 *
 * Every workflow is pinned to the worker deployment version it started on; a fleet run lives for
 * hours across many generations, so each generation moves to the current version when it continues
 * as new (and continues as new soon after a new version becomes current).
 */
import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
  type ContinueAsNewOptions,
  type Workflow,
} from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import type { BatchActivities } from '../activities/batch/batch-activities';
import { InvalidUserIdError, parseUserId } from '../domain/user-id';
import { FLEET_SIGNED_CONTROLS_PATCH, FLEET_TEMPORAL_CANCEL_AUDIT_PATCH, MAX_LIST_USER_IDS, type BatchSource, type FleetControlRequest } from '../contracts/batch-backup-api';
import { READ_ONLY_OPTIONS } from '../contracts/fleet-timeouts';
import { fetchPageOrPause } from './source-pages';
import type { AuditEventKind } from '../contracts/audit-events';
import { recordAct } from './audit-trail';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import type { OperatorActionKind } from '../domain/operator-action';
import { expectedAction, requireSignedRequest, verifySigned } from './operator-verification';

/** Waits shorter than this are not worth a timer: the start goes out in this workflow task. */
export const MIN_PACING_SLEEP_MS = 20;
/** After a late start (a pause, a slow worker), the pace catches up by at most this much, not by a burst of the whole delay. */
export const MAX_CATCH_UP_MS = 5_000;
/** Continue as new at this history length, whatever the work done (e.g. pages that skip everyone). */
export const MAX_HISTORY_EVENTS_PER_RUN = 10_000;

/** The next generation starts on the deployment's current version, not the one this run is pinned to. */
export const UPGRADE_ON_CONTINUE_AS_NEW: ContinueAsNewOptions = { initialVersioningBehavior: 'AUTO_UPGRADE' };

/** Reads of the user source and looks at joined backups (the batch activities enforce BATCH_SOURCE_ALLOWED_ORIGINS). */
export const readOnly = proxyActivities<BatchActivities>(READ_ONLY_OPTIONS);

/**
 * The pace: a fixed schedule of `intervalMs` per user. A start that came late is made up by the next
 * ones, so delays do not add up over the run, but by at most MAX_CATCH_UP_MS (at least one
 * interval) worth of starts at once.
 */
export function nextStartAfter(nextStartAt: number, now: number, users: number, intervalMs: number): number {
  return Math.max(nextStartAt + users * intervalMs, now - Math.max(intervalMs, MAX_CATCH_UP_MS));
}

export class Pacer {
  private readonly intervalMs: number;

  constructor(
    usersPerMinute: number,
    /** When the next start may go out (workflow time, ms). */
    public nextStartAt = Date.now(),
  ) {
    this.intervalMs = 60_000 / usersPerMinute;
  }

  /**
   * Waits for the slot of the next `users` starts and takes it; false when `interrupted` came first
   * (nothing taken). Workflow time stands still within a task, so starts due within a few
   * milliseconds go out together; a timer only when the pace really asks to wait.
   */
  async slot(users: number, interrupted: () => boolean): Promise<boolean> {
    const wait = this.nextStartAt - Date.now();
    if (wait >= MIN_PACING_SLEEP_MS && (await condition(interrupted, wait))) return false;
    this.nextStartAt = nextStartAfter(this.nextStartAt, Date.now(), users, this.intervalMs);
    return true;
  }
}

/** Whether this generation has done enough (`done` of `perRun`), or history or the deployment asks for a new one. */
export function shouldContinueAsNew(done: number, perRun: number, maxHistoryEvents = MAX_HISTORY_EVENTS_PER_RUN): boolean {
  const info = workflowInfo();
  return done >= perRun || info.continueAsNewSuggested || info.historyLength >= maxHistoryEvents || info.targetWorkerDeploymentVersionChanged;
}

/** Continues as new on the current deployment version once every update and signal handler has finished. */
export async function continueAsNewUpgrading<F extends Workflow>(...args: Parameters<F>): Promise<never> {
  await condition(allHandlersFinished);
  return makeContinueAsNewFunc<F>(UPGRADE_ON_CONTINUE_AS_NEW)(...args);
}

/** The fleet runs, as the audit trail names them. */
export type FleetRunKind = 'batch' | 'drill' | 'rotation';

/** An operator's control of a fleet run. */
export type FleetControlKind = 'pause' | 'resume' | 'cancel';

/** The verified operator of a signed control (a worker checks the signature; any verified operator may). */
async function verifiedController(kind: OperatorActionKind, request: FleetControlRequest | undefined): Promise<string> {
  const action = request?.action;
  if (!action) throw ApplicationFailure.nonRetryable('a fleet-run control must carry the operator\u2019s signed action', 'OperatorNotVerifiedError');
  return (await verifySigned({ action, expected: expectedAction(kind, undefined), mustBeApprover: false })).operator;
}

/** What the refusal of an unsigned control says to do (the HTTP API has routes for a batch's controls only). */
function howToSign(fleetRun: FleetRunKind, control: FleetControlKind): string {
  const command = `backup ${fleetRun === 'rotation' ? 'keys' : fleetRun} ${control}`;
  return `sign it with \`${command}\` (OPERATOR_NAME and your own VAULT_TOKEN)${fleetRun === 'batch' ? ' or send it through the HTTP API with a named token' : ''}`;
}

/** What a fleet run carries of its control: a pause, a cancel, a page its source refused. */
export interface RunFlags {
  paused?: boolean;
  cancelled?: boolean;
  sourceRefused?: string;
}

/** Pause, resume and cancel of a fleet run, over the flags it carries from run to run. */
export class FleetControl {
  constructor(private readonly flags: RunFlags) {}

  get cancelled(): boolean {
    return this.flags.cancelled === true;
  }

  /** Paused by an operator or by its source (a page refused for good). */
  get paused(): boolean {
    return this.flags.paused === true || this.flags.sourceRefused !== undefined;
  }

  get sourceRefused(): string | undefined {
    return this.flags.sourceRefused;
  }

  pause(): void {
    this.flags.paused = true;
  }

  /** Resumes; a page the source refused is asked for again. */
  resume(): void {
    if (this.flags.paused !== undefined) this.flags.paused = false;
    delete this.flags.sourceRefused;
  }

  cancel(): void {
    this.flags.cancelled = true;
  }

  refused(reason: string): void {
    this.flags.sourceRefused = reason;
  }

  /**
   * The pause, resume and cancel updates, each answering with `answer()` as the act left the run,
   * once the act is in the audit trail (`fleetRun`: which kind of run, for the record).
   */
  handleUpdates<P>(updates: Record<FleetControlKind, UpdateDefinition<P, [FleetControlRequest]>>, answer: () => P, fleetRun: FleetRunKind): void {
    for (const control of ['pause', 'resume', 'cancel'] as const) this.handleControl(updates[control], control, answer, fleetRun);
  }

  /**
   * One control update. Its validator refuses a request without the operator's signed statement of
   * this act on this run (and `precondition` a request the run cannot take); its handler has a worker
   * verify the signature (any verified operator may), then acts and records the verified operator.
   * A control accepted before FLEET_SIGNED_CONTROLS_PATCH replays as it ran: unverified.
   */
  handleControl<P>(update: UpdateDefinition<P, [FleetControlRequest]>, control: FleetControlKind, answer: () => P, fleetRun: FleetRunKind, precondition?: () => void): void {
    const { act, audit, kind } = this.controls[control];
    const handler = async (request?: FleetControlRequest) => {
      const actor = patched(FLEET_SIGNED_CONTROLS_PATCH) ? await verifiedController(kind, request) : undefined;
      act();
      // The answer is the run as the act left it, not as it is once the record is written.
      const answered = answer();
      await recordAct(audit, { actor, details: { fleetRun, ...(request?.reason !== undefined ? { reason: request.reason } : {}) } });
      return answered;
    };
    setHandler(update, handler, {
      validator: (request?: FleetControlRequest) => {
        if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
        precondition?.();
        const statement = requireSignedRequest(request, expectedAction(kind, undefined), howToSign(fleetRun, control));
        if (statement.reason !== request?.reason) throw new Error(`the ${control} reason must be the one signed in the action`);
      },
    });
  }

  private readonly controls: Record<FleetControlKind, { act: () => void; audit: AuditEventKind; kind: OperatorActionKind }> = {
    pause: { act: () => this.pause(), audit: 'fleet.paused', kind: 'fleet-pause' },
    resume: { act: () => this.resume(), audit: 'fleet.resumed', kind: 'fleet-resume' },
    cancel: { act: () => this.cancel(), audit: 'fleet.cancelled', kind: 'fleet-cancel' },
  };

  /**
   * Runs `body` where a Temporal cancel (Web UI, `temporal workflow cancel`) cannot reach it and
   * acts as the cancel update: no new work, what is in flight finishes, the report is the result.
   * Such a cancel carries no operator's signature (it takes namespace rights, not an operator key):
   * it is recorded as `fleet.cancelled` by `unidentified`, `via: temporal-cancel`, before the run
   * ends (FLEET_TEMPORAL_CANCEL_AUDIT_PATCH), so the trail never misses a control.
   */
  shielded<T>(fleetRun: FleetRunKind, body: () => Promise<T>): Promise<T> {
    let recorded: Promise<void> = Promise.resolve();
    CancellationScope.current().cancelRequested.catch(() => {
      this.cancel();
      if (!patched(FLEET_TEMPORAL_CANCEL_AUDIT_PATCH)) return;
      recorded = CancellationScope.nonCancellable(() => recordAct('fleet.cancelled', { act: 'temporal-cancel', details: { fleetRun, via: 'temporal-cancel' } }));
    });
    return CancellationScope.nonCancellable(async () => {
      try {
        return await body();
      } finally {
        await recorded;
      }
    });
  }
}

/** An id a source listed that is not a user id: reported by the run, never started. */
export interface InvalidUser {
  userId: string;
  reason: string;
}

/** Where a fleet run stands in its source, carried from run to run. */
export interface SourcePosition {
  cursor?: string;
  sourceExhausted: boolean;
}

/**
 * The users of a run's source, a page at a time. A list source travels on with only the ids not
 * taken yet; a paged source with its cursor. Each page is sorted once for every fleet run: ids that
 * are not user ids are returned apart (to be reported), the rest each once and not already queued.
 */
export class UserSource {
  private list: string[];

  constructor(
    private readonly source: BatchSource,
    private readonly pageSize: number,
    private readonly position: SourcePosition,
    private readonly control: FleetControl,
    private readonly runName: string,
  ) {
    this.list = source.kind === 'list' ? [...source.userIds] : [];
  }

  get exhausted(): boolean {
    return this.position.sourceExhausted;
  }

  /** The next page, or undefined when the source refused it for good (the run is paused until resume asks again). */
  async nextPage(queued: Iterable<string>): Promise<{ userIds: string[]; invalid: InvalidUser[] } | undefined> {
    const page = await this.read();
    return page && sortPage(page, queued);
  }

  /** What the next run's input says of the source: a list carries only the ids not taken yet. */
  nextRunSource(): { source?: BatchSource } {
    return this.source.kind === 'list' ? { source: { kind: 'list', userIds: this.list } } : {};
  }

  private async read(): Promise<string[] | undefined> {
    const position = this.position;
    if (this.source.kind === 'list') {
      const page = this.list.splice(0, this.pageSize);
      position.sourceExhausted = this.list.length === 0;
      return page;
    }
    const url = this.source.url;
    const fetch = () => readOnly.fetchUserPage({ url, cursor: position.cursor, limit: this.pageSize });
    const fetched = await fetchPageOrPause(fetch, position.cursor, (reason) => {
      this.control.refused(reason);
      log.warn(`${this.runName} paused: its user source refused a page`, { workflowId: workflowInfo().workflowId, reason });
    });
    if (!fetched) return undefined;
    if (fetched.nextCursor) position.cursor = fetched.nextCursor;
    position.sourceExhausted = !fetched.nextCursor;
    return fetched.userIds;
  }
}

/** Splits a page: the user ids to queue (each once, none already queued) and the ids that are not user ids. */
export function sortPage(page: string[], queued: Iterable<string>): { userIds: string[]; invalid: InvalidUser[] } {
  const seen = new Set(queued);
  const userIds: string[] = [];
  const invalid: InvalidUser[] = [];
  for (const id of page) {
    const reason = invalidUserId(id);
    if (reason !== undefined) invalid.push({ userId: String(id), reason: `not a valid user id, not started: ${reason}` });
    else if (!seen.has(id)) {
      seen.add(id);
      userIds.push(id);
    }
  }
  return { userIds, invalid };
}

function invalidUserId(id: unknown): string | undefined {
  try {
    parseUserId(id);
    return undefined;
  } catch (error) {
    if (error instanceof InvalidUserIdError) return error.message;
    throw error;
  }
}

/** The problem with a first run's list source, if it is longer than a workflow input may carry. */
export function listTooLong(source: BatchSource, carried: unknown): string | undefined {
  if (source.kind !== 'list' || carried || source.userIds.length <= MAX_LIST_USER_IDS) return undefined;
  return `a list source holds at most ${MAX_LIST_USER_IDS} user ids (got ${source.userIds.length}): use a paged source`;
}

/**
 * Users done in the last minute. Never extrapolated from less than a minute: a run's first
 * activity finishes a whole chunk of users at once, and 10 users in the first second read as
 * "600/min" beside a pace of 16 (the rotation's status did).
 */
export class RateWindow {
  private readonly times: number[] = [];

  record(users = 1): void {
    const now = Date.now();
    for (let i = 0; i < users; i += 1) this.times.push(now);
    while (this.times.length && this.times[0]! < now - 60_000) this.times.shift();
  }

  /** The rate and, when the total is known, the seconds left at that rate. */
  report(startedAt: string, total: number | undefined, done: number): { ratePerMinute: number; etaSeconds?: number } {
    const now = Date.now();
    const rate = this.times.filter((at) => at >= now - 60_000).length;
    // Before a minute has passed, the ETA is not measured yet either.
    const measured = now - Date.parse(startedAt) >= 60_000;
    return {
      ratePerMinute: rate,
      ...(total !== undefined && rate > 0 && measured ? { etaSeconds: Math.max(0, Math.round(((total - done) / rate) * 60)) } : {}),
    };
  }
}

/** Appends `item`, dropping the oldest beyond `max`. */
export function pushBounded<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.shift();
}

/** Why a child or an activity failed, as reports show it: its cause's type and message. */
export function failureReason(error: unknown): string {
  if ((error instanceof ChildWorkflowFailure || error instanceof ActivityFailure) && error.cause) {
    const cause = error.cause;
    return cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ${cause.message}` : cause.message;
  }
  return error instanceof Error ? error.message : String(error);
}
