/**
 * Activity timing shared by the backup and recovery workflows, named once. Changing a value here
 * changes new commands only (recorded histories replay: Temporal matches activities by id and type).
 */
import type { ActivityOptions, RetryPolicy } from '@temporalio/common';
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
 * A long outage costs each run in flight one attempt per 10 s.
 */
export const TRANSIENT_RETRY_MAX_INTERVAL = '10 seconds';

/**
 * After this many failed attempts of one step (about two minutes of retrying at most 10 s apart)
 * the failure is no longer a blip but an outage: each run in flight then tries once a minute
 * (`OUTAGE_RETRY_INTERVAL_MS`, as the activity's next retry delay), so a long outage of Portal,
 * Vault or the credentials source without a shared rate limit is not hammered.
 */
export const OUTAGE_AFTER_ATTEMPTS = 12;
export const OUTAGE_RETRY_INTERVAL_MS = 60_000;

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
