/** The public surface of the batchBackup workflow (imported by the workflow and by clients). */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/** Where the batch takes its user ids from. */
export type BatchSource =
  /** An explicit list (from the CLI, or a file the client read). */
  | { kind: 'list'; userIds: string[] }
  /** The company backend's paged route: `GET url?cursor=…&limit=…` → `{userIds, nextCursor}`. */
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

export interface BatchCarriedState {
  listIndex: number;
  cursor?: string;
  sourceExhausted: boolean;
  pending: string[];
  counts: BatchCounts;
  problems: BatchProblem[];
  startedAt: string;
  paused: boolean;
  runs: number;
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
}

export interface BatchReport extends BatchProgress {
  problems: BatchProblem[];
  finishedAt: string;
}

export const batchProgressQuery = defineQuery<BatchProgress>('batchProgress');
export const batchProblemsQuery = defineQuery<BatchProblem[]>('batchProblems');
export const pauseBatchUpdate = defineUpdate<BatchProgress>('pause');
export const resumeBatchUpdate = defineUpdate<BatchProgress>('resume');
export const cancelBatchUpdate = defineUpdate<BatchProgress>('cancel');
/** Sent by a child backupWallet when it parks, so its window slot is freed. */
export const childParkedSignal = defineSignal<[{ userId: string; reason: string }]>('childParked');

export function batchWorkflowId(batchId: string): string {
  return `batch-${batchId}`;
}
