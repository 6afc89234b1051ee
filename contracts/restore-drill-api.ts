/**
 * The public surface of the restoreDrill workflow (imported by the workflow, its activities and
 * clients): input, outcomes, the report query, the search attributes that mark a failing backup,
 * and the ids. Deterministic and free of Node APIs.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BatchSource, FleetControlRequest } from './batch-backup-api';
import type { StepReceipt } from '../domain/step-receipt';

/**
 * Set, with BackupStatus = DRILL_FAILED and BackupStep = the failure's kind, on the `drillFinding`
 * run a drill starts for every user whose backup fails it. Filter the Web UI with
 * `BackupStatus = "DRILL_FAILED"` (every finding) or `DrillId = "<drill id>"` (one drill's).
 */
export const DrillIdKey = defineSearchAttributeKey('DrillId', SearchAttributeType.KEYWORD);
/** The BackupStatus of a drill finding. */
export const DRILL_FAILED_STATUS = 'DRILL_FAILED';

/** Why a user's stored backup cannot restore the wallet (BackupStep of its finding). */
export const DRILL_FAILURE_KINDS = [
  /** A completed pair has no ciphertext in the store. */
  'CIPHERTEXT_MISSING',
  /** The ciphertext decrypts only in the context of another pair of the user: stored under the wrong pair. */
  'CIPHERTEXT_WRONG_PAIR',
  /** The ciphertext does not decrypt in its context (altered, or another user's), or not to Portal's `{id, share}` of its pair. */
  'CIPHERTEXT_INVALID',
  /** One curve has a completed pair and the other has none. */
  'INCOMPLETE_BACKUP',
  /** Self-Managed: the company holds no custodian share for a completed pair. */
  'CUSTODIAN_SHARE_MISSING',
  /** Self-Managed: the custodian share held does not decrypt in its context, or not to what Portal delivered. */
  'CUSTODIAN_SHARE_INVALID',
  /** CIPHERTEXT_STORES: one store's copy is missing while another copy restores (the reason names the store). */
  'COPY_MISSING',
  /** CIPHERTEXT_STORES: one store's copy does not restore while another copy does (the reason names the store). */
  'COPY_DIVERGES',
  /** A permanent error while checking this user (unknown to the backend, key revoked at Portal, store refused the read). */
  'CHECK_FAILED',
] as const;
export type DrillFailureKind = (typeof DRILL_FAILURE_KINDS)[number];

/** What the drill found for one user (the check activity's result, one per user). */
export type DrillUserOutcome = (
  | { userId: string; outcome: 'passed' }
  /** No completed backup at Portal: nothing to restore, so nothing to check. */
  | { userId: string; outcome: 'skipped'; reason: string }
  | { userId: string; outcome: 'failed'; kind: DrillFailureKind; reason: string }
  /** Could not be checked (a store, Vault or Portal stayed unavailable through every retry): not a failure. */
  | { userId: string; outcome: 'inconclusive'; reason: string }
) & {
  /** The worker's receipt (DRILL_VERDICT) over the verdict: a drill counts only verdicts a worker of this run made. */
  receipt?: StepReceipt;
};

/** What a verdict's receipt vouches for: the user, the outcome, and its kind and reason if any. */
export function drillVerdictClaims(outcome: DrillUserOutcome): Record<string, string> {
  return {
    userId: outcome.userId,
    outcome: outcome.outcome,
    kind: outcome.outcome === 'failed' ? outcome.kind : '',
    reason: 'reason' in outcome ? outcome.reason : '',
  };
}

export interface DrillFailure {
  userId: string;
  kind: DrillFailureKind;
  /** Ids, curves and the check that failed; never a share, key or token. */
  reason: string;
  checkedAt: string;
}

export interface DrillUnchecked {
  userId: string;
  reason: string;
}

/** The input of a `drillFinding` run: what it records, visible as its result. */
export interface DrillFinding extends DrillFailure {
  drillId: string;
}

export interface RestoreDrillInput {
  /** The users to check: a list (at most MAX_LIST_USER_IDS) or the backend's paged route, as for a batch. */
  source: BatchSource;
  /** Users checked per minute at most (the drill paces itself, so Vault, the store and Portal are not flooded). */
  usersPerMinute: number;
  /** Ids fetched per page of the source (default 100). */
  pageSize?: number;
  /** Check activities per run before the drill continues as new (default 200). */
  checksPerRun?: number;
  /** History length at which a run continues as new, whatever its checks (default 10,000). */
  maxHistoryEventsPerRun?: number;
  /**
   * From this attempt of a check activity on, a user that still cannot be checked for a transient
   * reason is reported `inconclusive` instead of holding the drill (default 30, about 25 minutes of
   * retries with backoff up to a minute).
   */
  inconclusiveAfterAttempts?: number;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: DrillCarriedState;
}

export interface DrillCounts {
  checked: number;
  passed: number;
  failed: number;
  skipped: number;
  inconclusive: number;
}

/** What one run hands the next. Nothing in it grows with the number of users. */
export interface DrillCarriedState {
  /** For a list source: how many ids the first run's list had (later runs carry only the rest). */
  listTotal?: number;
  cursor?: string;
  sourceExhausted: boolean;
  /** Ids fetched and not checked yet (at most one page). */
  pending: string[];
  counts: DrillCounts;
  /** The most recent failures (at most MAX_REPORTED_FAILURES); every one is also a `drillFinding` run. */
  failures: DrillFailure[];
  /** The most recent users that could not be checked (at most MAX_REPORTED_FAILURES). */
  inconclusive: DrillUnchecked[];
  /** The most recent users skipped (no completed backup), at most MAX_REPORTED_FAILURES; absent in a run carried from a build before it. */
  skipped?: DrillUnchecked[];
  startedAt: string;
  /** When the next check may start (workflow time, ms): the pace holds across runs. */
  nextCheckAt: number;
  runs: number;
  /** The source refused a page for good: the drill waits for `resume`, which asks for it again. */
  sourceRefused?: string;
}

/** PAUSED: its user source refused a page (`sourceRefused` says why); `resume` asks for that page again. */
export type DrillStatus = 'RUNNING' | 'PAUSED' | 'COMPLETED';

export interface DrillReport {
  drillId: string;
  status: DrillStatus;
  /** Known for a list source; for a paged source, once it is exhausted. */
  total?: number;
  counts: DrillCounts;
  usersPerMinute: number;
  /** Continue-as-new generations so far. */
  runs: number;
  startedAt: string;
  finishedAt?: string;
  /** The most recent failures; `failuresOmitted` more are listed from visibility (`DrillClient.listFailures`). */
  failures: DrillFailure[];
  failuresOmitted?: number;
  inconclusive: DrillUnchecked[];
  inconclusiveOmitted?: number;
  /** The users skipped and why (no completed backup to check); `skippedOmitted` more were counted. */
  skipped: DrillUnchecked[];
  skippedOmitted?: number;
  /** Why the drill is paused, when its user source refused a page. */
  sourceRefused?: string;
}

/** How many failures (and inconclusive users) a drill keeps in its state and report. */
export const MAX_REPORTED_FAILURES = 200;

/** The report so far (the final one is the drill's result). */
export const drillReportQuery = defineQuery<DrillReport>('report');

/** Asks a drill paused by its source for the refused page again (refused unless it is paused). */
export const resumeDrillUpdate = defineUpdate<DrillReport, [FleetControlRequest]>('resume');

/** Drill ids are the drill workflows' ids: `drill-<id>` (a schedule appends the time of each run). */
export const DRILL_ID_PREFIX = 'drill-';
export function drillWorkflowId(id: string): string {
  return id.startsWith(DRILL_ID_PREFIX) ? id : `${DRILL_ID_PREFIX}${id}`;
}

/** One finding per drill and user; its id names both, so a drill marks a user once. */
export function drillFindingWorkflowId(drillId: string, userId: string): string {
  return `${drillId}-finding-${userId}`;
}

/** The schedule `backup drill schedule` creates unless given another id. */
export const DEFAULT_DRILL_SCHEDULE_ID = 'restore-drill';
