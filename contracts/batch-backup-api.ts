/** The public surface of the batchBackup workflow (imported by the workflow and by clients). */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { SignedOperatorAction } from '../domain/operator-action';

/**
 * The most user ids a list source may carry in the workflow input (about 130 KB at the longest
 * ids): the list travels in every continue-as-new. Larger sets come from a paged source.
 */
export const MAX_LIST_USER_IDS = 1_000;

/** Where the batch takes its user ids from. */
export type BatchSource =
  /** An explicit list (from the CLI, or a file the client read), at most MAX_LIST_USER_IDS ids. */
  | { kind: 'list'; userIds: string[] }
  /**
   * The company backend's paged route: `GET url?cursor=…&limit=…` → `{userIds, nextCursor}`. Its
   * origin must be one the workers allow (BATCH_SOURCE_ALLOWED_ORIGINS): they send it the
   * credentials header.
   */
  | { kind: 'http'; url: string };

export interface BatchBackupInput {
  batchId: string;
  source: BatchSource;
  /** Backups in flight at once (the sliding window). */
  concurrency: number;
  /** Backups started per minute at most, across all workers (the batch paces its own starts). */
  backupsPerMinute: number;
  /** Skip users whose last completed backup closed after this ISO time. */
  skipIfBackedUpSince?: string;
  /** Ids fetched per page of the source. */
  pageSize?: number;
  /** Child starts per run before the batch drains and continues as new (default 500). */
  startsPerRun?: number;
  /** History length at which a run drains and continues as new, whatever its starts (default 10,000). */
  maxHistoryEventsPerRun?: number;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: BatchCarriedState;
}

export interface BatchProblem {
  userId: string;
  status: 'FAILED' | 'NEEDS_ATTENTION';
  reason: string;
}

export interface BatchCounts {
  started: number;
  completed: number;
  failed: number;
  parked: number;
  skipped: number;
  /** Users whose backup was already running and was joined instead of started. */
  joined: number;
}

/**
 * What one run hands the next. Nothing in it grows with the number of wallets: the pending page
 * is at most pageSize, problems are counted and only the most recent few kept (every backup the
 * batch started carries its BatchId, so all problems can be listed from visibility).
 */
export interface BatchCarriedState {
  version: 2;
  /** For a list source: how many ids the first run's list had (later runs carry only the rest). */
  listTotal?: number;
  cursor?: string;
  sourceExhausted: boolean;
  pending: string[];
  counts: BatchCounts;
  recentProblems: BatchProblem[];
  startedAt: string;
  paused: boolean;
  runs: number;
  /** Backups joined (not started) and still running: polled on in the next run (at most `concurrency`). */
  joined?: string[];
  /** A cancel (update or Temporal) arrived; the next run only drains what is carried. */
  cancelled?: boolean;
  /** Parked backups still counted as parked, watched by the next run so a later completion is counted (the most recent MAX_CARRIED_PARKED). */
  parkedUsers?: string[];
  /** The source refused a page for good: the run is paused until `resume`, which asks for it again. */
  sourceRefused?: string;
}

export type BatchStatus = 'RUNNING' | 'PAUSED' | 'CANCELLING' | 'COMPLETED' | 'CANCELLED';

export interface BatchProgress {
  batchId: string;
  status: BatchStatus;
  /** Known when the source is a list; for a paged source, once it is exhausted. */
  total?: number;
  counts: BatchCounts;
  inFlight: number;
  /** Completions per minute over the last minute. */
  ratePerMinute: number;
  etaSeconds?: number;
  backupsPerMinute: number;
  concurrency: number;
  /** Continue-as-new generations so far (history stays bounded per run). */
  runs: number;
  startedAt: string;
  /** Why the run is paused, when its user source refused a page (resume asks for that page again). */
  sourceRefused?: string;
}

export interface BatchReport extends BatchProgress {
  /** The most recent problems (at most MAX_RECENT_PROBLEMS); `backup batch problems <id>` lists all. */
  problems: BatchProblem[];
  /** Problems counted but not in `problems` (older than the most recent ones kept). */
  problemsOmitted?: number;
  finishedAt: string;
}

/** How many parked backups a run hands the next to watch: beyond it, the oldest stay counted as parked. */
export const MAX_CARRIED_PARKED = 1_000;

/** How many problems a batch keeps in its state and report; the rest are listed from visibility. */
export const MAX_RECENT_PROBLEMS = 50;

export const batchProgressQuery = defineQuery<BatchProgress>('batchProgress');
/** The most recent problems (bounded); the client lists all of them from visibility. */
export const batchProblemsQuery = defineQuery<BatchProblem[]>('batchProblems');
export const pauseBatchUpdate = defineUpdate<BatchProgress, [FleetControlRequest]>('pause');
export const resumeBatchUpdate = defineUpdate<BatchProgress, [FleetControlRequest]>('resume');
export const cancelBatchUpdate = defineUpdate<BatchProgress, [FleetControlRequest]>('cancel');

/**
 * A fleet run's pause, resume or cancel (batches, drills, rotations): the operator's signed
 * statement of that act on that run (`fleet-pause`, `fleet-resume`, `fleet-cancel`), and for a
 * cancel an optional reason, signed in it too. Runs refuse an update without one (its validator
 * says how to sign); builds from before FLEET_SIGNED_CONTROLS_PATCH ignore it.
 */
export interface FleetControlRequest {
  action?: SignedOperatorAction;
  reason?: string;
}

/** Guards the worker's check of a fleet run's signed control (a local activity in the update's handler). */
export const FLEET_SIGNED_CONTROLS_PATCH = 'fleet-signed-controls';
/** The patch id of the audit row a Temporal cancel of a fleet run writes (workflows/fleet-run.ts `shielded`). */
export const FLEET_TEMPORAL_CANCEL_AUDIT_PATCH = 'fleet-temporal-cancel-audit';
/** Sent by a child backupWallet when it parks, so its window slot is freed. */
export const childParkedSignal = defineSignal<[{ userId: string; reason: string }]>('childParked');

/** Set on every backup a batch starts, so the batch's problems can be listed from visibility. */
export const BatchIdKey = defineSearchAttributeKey('BatchId', SearchAttributeType.KEYWORD);

export function batchWorkflowId(batchId: string): string {
  return `batch-${batchId}`;
}
