import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { BackupDomainError, KmsPermissionError, VaultPermissionError } from '../../domain/errors';
import { redactSecrets } from '../../domain/redact';
import { retryDelayAfterFailureMs } from '../../contracts/step-timeouts';
import { heartbeatEveryMs, msSinceProgress, toApplicationFailure } from '../activity-boundary';

/**
 * The boundary of the key rotation's activities (the rewrap, the census, the key steps): how an
 * error is classed (retry the activity, or count it against one user or ciphertext) and how a
 * heartbeat carries a checkpoint.
 */

/** The errors that stop every user alike (a token without the rotation policy): retried until fixed, not counted per user. */
const SYSTEMIC_ERRORS = [VaultPermissionError, KmsPermissionError];

/** A per-user or per-ciphertext failure's reason, as reports show it: the error's type and (redacted) message. */
export function reasonOf(error: unknown): string {
  if (error instanceof BackupDomainError) return redactSecrets(`${error.name}: ${error.message}`);
  return redactSecrets(error instanceof Error ? `UnexpectedError: ${error.name}: ${error.message}` : `UnexpectedError: ${String(error)}`);
}

/** Transient failures retry the activity (which resumes at its checkpoint); systemic ones too, visibly. */
export function mustRetry(error: unknown): boolean {
  if (error instanceof CancelledFailure) return true;
  if (error instanceof BackupDomainError && error.retryable) return true;
  return SYSTEMIC_ERRORS.some((type) => error instanceof type);
}

/**
 * Like activityBoundary, but every heartbeat carries the activity's checkpoint: the periodic one
 * too, since a heartbeat without details would clear the last ones. The next attempt's pace comes
 * from the time since the checkpoint last moved (`progressAtMs`). Systemic permanent errors
 * (VaultPermissionError) are made retryable, so a missing policy waits for the fix.
 */
export async function checkpointedBoundary<T>(
  heartbeatIntervalMs: number,
  checkpoint: () => { progressAtMs?: number } | undefined,
  body: () => Promise<T>,
): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(checkpoint()), heartbeatEveryMs(context, heartbeatIntervalMs));
  try {
    return await Promise.race([body(), context.cancelled]);
  } catch (error) {
    if (error instanceof CancelledFailure) throw error;
    const sinceProgressMs = msSinceProgress(context, checkpoint()?.progressAtMs);
    if (SYSTEMIC_ERRORS.some((type) => error instanceof type)) {
      const failure = toApplicationFailure(error);
      throw ApplicationFailure.create({
        type: failure.type ?? 'VaultPermissionError',
        message: failure.message,
        nonRetryable: false,
        nextRetryDelay: retryDelayAfterFailureMs(sinceProgressMs),
      });
    }
    throw toApplicationFailure(error, sinceProgressMs);
  } finally {
    clearInterval(timer);
  }
}

export function plainBoundary<T>(heartbeatIntervalMs: number, body: () => Promise<T>): Promise<T> {
  return checkpointedBoundary(heartbeatIntervalMs, () => undefined, body);
}

