/**
 * Activity timing shared by the backup and recovery workflows, named once. Changing a value here
 * changes new commands only (recorded histories replay: Temporal matches activities by id and type).
 */
import type { ActivityOptions, Duration, RetryPolicy } from '@temporalio/common';
import { PERMANENT_ERROR_TYPES } from '../domain/errors';

/**
 * Every step: two minutes per attempt; heartbeats every 2 s (HEARTBEAT_INTERVAL_MS), so a dead
 * worker's attempt is retried elsewhere after 8 s (it was 15 s: in the fault campaign, waiting out
 * SIGKILLed workers was most of the completion tail).
 */
export const STEP_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '8 seconds',
};

/**
 * The longest wait between two attempts of a step after a transient error. Short, because a step's
 * transient faults (a 503, a lost response, a Vault or Temporal restart) clear in seconds, and a
 * minute between attempts made a few unlucky backups take many minutes (the fault campaign's tail).
 * Portal is not hurt by it: a 429 with Retry-After sets its own delay, the batch paces starts, and
 * with PORTAL_*_REQUESTS_PER_MINUTE every request, retries included, waits for a slot of the limit.
 * A long outage is paced apart (retryDelayAfterFailureMs below).
 */
export const TRANSIENT_RETRY_MAX_MS = 10_000;
export const TRANSIENT_RETRY_MAX_INTERVAL: Duration = TRANSIENT_RETRY_MAX_MS;

/**
 * The pace of a step's retries tells a flaky dependency from a down one by progress, not by a count
 * of failed attempts: a step that keeps moving its checkpoint (a key rotation's rewrap, one
 * ciphertext at a time, under Portal's per-request faults) is not in an outage however many of its
 * attempts failed. Only when nothing moved for `OUTAGE_AFTER_NO_PROGRESS_MS` (about as long as
 * twelve attempts at most 10 s apart) does each run in flight try once a minute, so a long outage
 * of Portal, Vault or the credentials source without a shared rate limit is not hammered.
 * Before that, the wait is half the time since the last progress, between 250 ms and
 * TRANSIENT_RETRY_MAX_MS: a fault right after progress is retried at once, a fault that
 * keeps coming is backed off as with the policy's own doubling. A step without checkpoints
 * counts its first scheduling as its progress, so its pace grows like a doubling up to 10 s, then the
 * outage pace after two minutes of failures.
 */
export const OUTAGE_AFTER_NO_PROGRESS_MS = 2 * 60_000;
export const OUTAGE_RETRY_INTERVAL_MS = 60_000;
// 250 ms, not the policies' 1 s: in the fault campaign's 150-backup rotation (about 290 failed
// attempts over two lanes, nearly all right after progress) the 1 s floor alone was ~145 s of wall time.
const FLAKY_RETRY_MIN_MS = 250;

/** The wait before a step's next attempt after a transient failure, from the time since its last progress. */
export function retryDelayAfterFailureMs(sinceProgressMs: number): number {
  if (sinceProgressMs >= OUTAGE_AFTER_NO_PROGRESS_MS) return OUTAGE_RETRY_INTERVAL_MS;
  return Math.round(Math.min(TRANSIENT_RETRY_MAX_MS, Math.max(FLAKY_RETRY_MIN_MS, sinceProgressMs / 2)));
}

/**
 * Steps before anything exists at Portal may give up, on time rather than on a count of attempts
 * (a long run of 429s with Retry-After cannot exhaust them).
 */
export const GIVE_UP_AFTER = '30 minutes';
export const BEFORE_NO_RETURN_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL,
  nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES],
};

/**
 * Steps after the point of no return never give up on transient errors (unlimited attempts): the
 * workflow must not fail on its own. Permanent errors come back to the workflow, which parks.
 */
export const AFTER_NO_RETURN_RETRY: RetryPolicy = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL,
  // maximumAttempts left unset: unlimited.
  nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES],
};

/** A short look at Portal after a step failed for good; its failure only leaves a note. */
export const NOTE_ONLY_RETRY: RetryPolicy = { initialInterval: '1 second', maximumAttempts: 3, nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES] };
export const NOTE_ONLY_GIVE_UP_AFTER = '2 minutes';
