/**
 * Activity timing of the fleet runs (batchBackup, restoreDrill, rotateKeys), named once and by what
 * each protects, as contracts/step-timeouts.ts names the backup steps'. Changing a value here
 * changes new commands only.
 */
import type { ActivityOptions } from '@temporalio/common';
import { PERMANENT_ERROR_TYPES } from '../domain/errors';
import { STEP_OPTIONS, TRANSIENT_RETRY_MAX_INTERVAL } from './step-timeouts';

/**
 * Reads that change nothing: a page of the user source, a look at backups a batch joined. Transient
 * errors retry like a step's; a source outside the allowed origins or credentials it refuses fail
 * the call at once (a refused page then pauses the run with its report and cursor: nothing is lost).
 */
export const READ_ONLY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL,
    nonRetryableErrorTypes: ['BatchSourceNotAllowedError', 'CredentialsInvalidError'],
  },
};

/**
 * A drill's look at a few users' backups (Portal, the store, Vault): changes nothing, and transient
 * errors are never reported as failures. Its pace (1 s doubling to 1 min) is part of the drill's
 * contract: `inconclusiveAfterAttempts` (30 by default) is about 25 minutes of it, after which the
 * activity itself reports the user inconclusive, so attempts are unlimited here.
 */
export const DRILL_CHECK_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES] },
};

/** A rotation's key step, before anything changed: transient errors retry; permanent ones (a policy without rotate) fail the rotation at once. */
export const BEFORE_KEY_CHANGE_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL, nonRetryableErrorTypes: [...PERMANENT_ERROR_TYPES] },
};

/**
 * The check and the raise, after the whole verified pass: a token without `keys/<key>/config` is
 * retried until the policy is fixed (visible in `keys status`), so the pass is never lost to it.
 */
export const AFTER_VERIFIED_PASS_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: TRANSIENT_RETRY_MAX_INTERVAL,
    nonRetryableErrorTypes: PERMANENT_ERROR_TYPES.filter((type) => type !== 'VaultPermissionError' && type !== 'KmsPermissionError'),
  },
};

/**
 * Long checkpointed work (the rewrap of a few users, the census before the raise): heartbeats carry
 * the checkpoint, so a worker killed mid-way is noticed within the heartbeat timeout and the next
 * attempt resumes where it was. Unlimited attempts: per-user problems come back as results. A failed
 * attempt sets its own next delay (retryDelayAfterFailureMs: soon while its checkpoint moves, once a
 * minute after two minutes without progress), so this policy paces only the retries after a
 * heartbeat timeout: the worker died, and another resumes at once (a doubling by attempt count
 * added up to 10 s after each worker kill, since a long rewrap has many failed attempts).
 */
export const CHECKPOINTED_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: STEP_OPTIONS.heartbeatTimeout,
  retry: { initialInterval: '1 second', backoffCoefficient: 1 },
};

/** The census reads the user source itself: a source that refuses a page fails it, and the raise is not made. */
export const CENSUS_OPTIONS: ActivityOptions = {
  ...CHECKPOINTED_OPTIONS,
  retry: { ...CHECKPOINTED_OPTIONS.retry, nonRetryableErrorTypes: ['BatchSourceNotAllowedError', 'UserSourceRefusedError'] },
};
