/** The public surface of the rotateKeys workflow (imported by the workflow, the activities and clients). */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BatchSource, FleetControlRequest } from './batch-backup-api';
import type { StepReceipt } from '../domain/step-receipt';
import type { SignedOperatorAction } from '../domain/operator-action';

/**
 * One rotation at a time per Temporal namespace: the workflow id is fixed. Two rotations at once
 * would each add a key version and rewrap the same ciphertexts in parallel (Portal's ciphertext
 * route has no compare-and-set), and one could raise min_decryption_version under the other.
 */
export const KEY_ROTATION_WORKFLOW_ID = 'rotate-keys';

/** A list source of a rotation holds at most this many ids, as a batch's does (it travels in the input). */
export { MAX_LIST_USER_IDS } from './batch-backup-api';

/** How many failures a rotation keeps in its state and report; the rest are counted (and in the workers' logs). */
export const MAX_RECENT_ROTATION_FAILURES = 50;

/**
 * Users visited while their pre-rotation backup still ran, kept to be visited again (a backup
 * between its store and its mark must not see its ciphertext change). Past this many, the pass
 * waits for them before taking more users.
 */
export const MAX_DEFERRED_USERS = 200;

export interface RotateKeysInput {
  rotationId: string;
  /**
   * An approver's signed start (domain/operator-action.ts): of kind `rotationStartKind(raiseMinDecryptionVersion)`,
   * so a signed start without the raise cannot be replayed as one with it. Required of a first run
   * since ROTATION_SIGNED_START_PATCH; a continued run carries the verified operator instead.
   */
  request?: SignedOperatorAction;
  /** The users whose ciphertexts are rewrapped: a list, or the backend's paged route (as for a batch). */
  source: BatchSource;
  /** Users visited per minute at most, across all workers (the workflow paces its own activities). */
  usersPerMinute: number;
  /** Rewrap activities in flight at once. */
  concurrency: number;
  /** Users per rewrap activity (one heartbeat-resumable unit of work). */
  usersPerActivity?: number;
  /** Ids fetched per page of a paged source. */
  pageSize?: number;
  /** Raise the key's min_decryption_version to the new version once every ciphertext is verified on it. */
  raiseMinDecryptionVersion: boolean;
  /**
   * The source lists every user with a stored ciphertext. Needed to raise min_decryption_version
   * over a store that cannot be listed (Portal, HTTP): the raise is refused without it, since an
   * unlisted user's ciphertext would stop decrypting. The PostgreSQL store is counted instead.
   */
  everyUser?: boolean;
  /**
   * False: do not add a key version; rewrap everything to the latest one (e.g. to finish after a
   * rotation made by hand, or a second pass over users a first one did not list). Default true.
   */
  rotate?: boolean;
  /**
   * The task queue the backups run on (default: the rotation's own): before the raise, no backup
   * started before the rotation may still run there.
   */
  backupTaskQueue?: string;
  /** First wait before looking again at users whose backup was running (default 30 s, doubling to 5 min). */
  deferredRecheckMs?: number;
  /** The longest wait between those looks (default 5 min). */
  deferredRecheckMaxMs?: number;
  /** Rewrap activities per run before the workflow drains and continues as new (default 300). */
  activitiesPerRun?: number;
  /** History length at which a run drains and continues as new (default 10,000). */
  maxHistoryEventsPerRun?: number;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: RotationCarriedState;
  /**
   * The source as the first run was given it, for the census before the raise (a list source
   * travels on with only the ids not taken yet). Set by the workflow, not by clients.
   */
  censusSource?: BatchSource;
}

/** Ciphertexts of one kind: client backup shares in the store, or custodian shares held by the webhook. */
export interface CiphertextCounts {
  /** Were on an older key version; now on the new one, read back and decrypted to the same bytes. */
  rewrapped: number;
  /** Were on the new version already (a backup made after the rotation, or an earlier attempt). */
  alreadyCurrent: number;
  /** Read back on the new version and decrypted in their context (rewrapped + already current). */
  verified: number;
  failed: number;
}

export interface RotationCounts {
  /** Users whose pairs were all looked at (including those with failures). */
  usersVisited: number;
  /** Users that could not be looked at (no credentials, Portal refused, …). */
  usersFailed: number;
  /** Users whose pre-rotation backup was still running when visited (and how many times that happened). */
  usersDeferred: number;
  /** Backup share pairs at Portal with no ciphertext in the store (orphans of lost step-1 calls, unstored runs). */
  pairsWithoutCiphertext: number;
  /**
   * Copies (CIPHERTEXT_STORES names several stores): a copy of the user's newest completed backup
   * missing from one store while another holds one. Each is also a failed client ciphertext (it
   * blocks the raise) and a failure naming its store; `backup copies repair` recreates it. Absent
   * (0) with one store, and in counts made before copies were rotated.
   */
  copiesMissing?: number;
  /**
   * Copies: a copy absent from one store for a pair that is not of the newest completed backup (an
   * older backup, or pairs never marked: orphans, a backup in flight). Not a failure: nothing
   * restores from them and repair does not recreate them; the copies there are rewrapped.
   */
  copiesAbsentElsewhere?: number;
  clientCiphertexts: CiphertextCounts;
  custodianShares: CiphertextCounts;
}

export interface RotationFailure {
  userId: string;
  /** Absent for a failure of the whole user. */
  pairId?: string;
  kind: 'user' | 'client-ciphertext' | 'custodian-share';
  /** The store of the copy, when several stores keep copies (CIPHERTEXT_STORES). */
  store?: string;
  reason: string;
}

/** The key step's record: which versions the rotation went from and to. Set once; a resumed run never rotates again. */
export interface RotationKeyState {
  keyName: string;
  fromVersion: number;
  targetVersion: number;
  /** False when the rotation found the key rotated already (input rotate=false, or an earlier attempt's lost response). */
  rotatedByThisRun: boolean;
  /** Workflow time just after the key step: backups started before it may hold older ciphertexts. */
  rotatedAt: string;
  minDecryptionVersionBefore: number;
}

export interface RotationCarriedState {
  version: 1;
  key: RotationKeyState;
  listTotal?: number;
  cursor?: string;
  sourceExhausted: boolean;
  pending: string[];
  deferred: string[];
  counts: RotationCounts;
  failures: RotationFailure[];
  startedAt: string;
  paused: boolean;
  cancelled: boolean;
  runs: number;
  /** The source refused a page for good: paused until `resumeRotation`, which asks for it again. */
  sourceRefused?: string;
  /** The approver whose signed start was verified (absent in rotations from before signed starts). */
  startedBy?: string;
}

/** The statement kind of a rotation's start: the raise of min_decryption_version is an act of its own. */
export function rotationStartKind(raiseMinDecryptionVersion: boolean): 'rotation-start' | 'rotation-raise-min-version' {
  return raiseMinDecryptionVersion ? 'rotation-raise-min-version' : 'rotation-start';
}

/** Guards the worker's check of a rotation's signed start (a local activity before the key step). */
export const ROTATION_SIGNED_START_PATCH = 'rotation-signed-start';

/** A rotation started without an approver's verified signature: it ends before anything changed. */
export const ROTATION_REQUEST_UNVERIFIED_ERROR_TYPE = 'RotationRequestUnverified';

export type RotationStatus =
  | 'ROTATING_KEY'
  | 'REWRAPPING'
  | 'WAITING_FOR_BACKUPS'
  | 'CHECKING'
  | 'RAISING_MIN_DECRYPTION_VERSION'
  | 'PAUSED'
  | 'CANCELLING';

export type RotationOutcome = 'COMPLETED' | 'COMPLETED_WITH_FAILURES' | 'CANCELLED';

export interface RotationProgress {
  rotationId: string;
  status: RotationStatus | RotationOutcome;
  key?: RotationKeyState;
  /** Known for a list source; for a paged source, once it is exhausted. */
  total?: number;
  counts: RotationCounts;
  /** Users in rewrap activities right now. */
  inFlight: number;
  /** Users waiting for their pre-rotation backup to finish (the first few). */
  deferredUsers: string[];
  deferredCount: number;
  /** Users done in the last minute (measured; the pace asked for is usersPerMinute). */
  ratePerMinute: number;
  etaSeconds?: number;
  usersPerMinute: number;
  concurrency: number;
  raiseMinDecryptionVersion: boolean;
  runs: number;
  startedAt: string;
  /** Why the rotation is paused, when its user source refused a page (resume asks for that page again). */
  sourceRefused?: string;
}

export interface MinDecryptionVersionOutcome {
  requested: boolean;
  raised: boolean;
  /** The key's min_decryption_version when the rotation ended. */
  minDecryptionVersion?: number;
  /** Why it was not raised, when it was requested. */
  reason?: string;
}

export interface RotationReport extends RotationProgress {
  status: RotationOutcome;
  minDecryptionVersion: MinDecryptionVersionOutcome;
  /** The most recent failures (at most MAX_RECENT_ROTATION_FAILURES). */
  failures: RotationFailure[];
  failuresOmitted?: number;
  finishedAt: string;
  durationMs: number;
}

export const rotationProgressQuery = defineQuery<RotationProgress>('rotationProgress');
export const rotationFailuresQuery = defineQuery<RotationFailure[]>('rotationFailures');
export const pauseRotationUpdate = defineUpdate<RotationProgress, [FleetControlRequest]>('pauseRotation');
export const resumeRotationUpdate = defineUpdate<RotationProgress, [FleetControlRequest]>('resumeRotation');
/** Stops visiting users; activities in flight finish; min_decryption_version is not raised. */
export const cancelRotationUpdate = defineUpdate<RotationProgress, [FleetControlRequest]>('cancelRotation');

export function emptyCiphertextCounts(): CiphertextCounts {
  return { rewrapped: 0, alreadyCurrent: 0, verified: 0, failed: 0 };
}

export function emptyRotationCounts(): RotationCounts {
  return {
    usersVisited: 0,
    usersFailed: 0,
    usersDeferred: 0,
    pairsWithoutCiphertext: 0,
    clientCiphertexts: emptyCiphertextCounts(),
    custodianShares: emptyCiphertextCounts(),
  };
}

/** Adds `more` into `into` (both shapes of RotationCounts). */
export function addRotationCounts(into: RotationCounts, more: RotationCounts): void {
  into.usersVisited += more.usersVisited;
  into.usersFailed += more.usersFailed;
  into.usersDeferred += more.usersDeferred;
  into.pairsWithoutCiphertext += more.pairsWithoutCiphertext;
  // Only when there are some: counts of one store keep their shape (checkpoints, carried state).
  if (more.copiesMissing) into.copiesMissing = (into.copiesMissing ?? 0) + more.copiesMissing;
  if (more.copiesAbsentElsewhere) into.copiesAbsentElsewhere = (into.copiesAbsentElsewhere ?? 0) + more.copiesAbsentElsewhere;
  for (const kind of ['clientCiphertexts', 'custodianShares'] as const) {
    into[kind].rewrapped += more[kind].rewrapped;
    into[kind].alreadyCurrent += more[kind].alreadyCurrent;
    into[kind].verified += more[kind].verified;
    into[kind].failed += more[kind].failed;
  }
}

/** What one rewrap activity did for its users. */
export interface RewrapUsersResult {
  counts: RotationCounts;
  failures: RotationFailure[];
  /** Users whose pre-rotation backup was still running: visited again later. */
  deferred: string[];
}

export interface RewrapUsersInput {
  rotationId: string;
  userIds: string[];
  targetVersion: number;
  /** Backups started before this (ms since the epoch) and still running defer their user. */
  rotatedAtMs: number;
}

/** What the rotation's census is asked: every stored client ciphertext (every copy) of every user of `source`, on `targetVersion` or later? */
export interface RotationCensusInput {
  rotationId: string;
  targetVersion: number;
  /** The rotation's whole source (a list source as it was given, not what is left of it). */
  source: BatchSource;
  pageSize?: number;
}

/**
 * The census's answer. It carries a receipt (ROTATION_CENSUS) only when every ciphertext it read
 * was on the target version and every user could be read: the check before the raise accepts no
 * census without one, so a census completed from outside never lets min_decryption_version go up.
 */
export interface RotationCensus {
  usersCounted: number;
  ciphertextsCounted: number;
  /** Ciphertexts below the target version (with copies: every copy, each counted). */
  stale: number;
  /**
   * Copies (CIPHERTEXT_STORES names several stores): a copy of a user's newest completed backup
   * missing from one store while another holds one. Any blocks the raise (no receipt): repair the
   * copies first. Absent with one store.
   */
  copiesMissing?: number;
  /** Users or ciphertexts the census could not read for good (each is a reason not to raise). */
  unreadable: number;
  /** The first few stale or unreadable ones, by user and pair, with why. */
  sample: string[];
  /** The store is listed by the check itself (PostgreSQL): nothing was read here, and no receipt is needed. */
  storeCountedByCheck?: boolean;
  receipt?: StepReceipt;
}
