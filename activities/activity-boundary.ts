import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { BackupDomainError } from '../domain/errors';
import { redactSecrets } from '../domain/redact';
import { retryDelayAfterFailureMs } from '../contracts/step-timeouts';

/**
 * How often this activity heartbeats: `baseMs`, or a quarter of its heartbeat timeout when that is
 * longer (each heartbeat that reaches the server is a billable action; a quarter still leaves
 * three misses before the timeout).
 */
export function heartbeatEveryMs(context: Context, baseMs: number): number {
  return Math.max(baseMs, (context.info.heartbeatTimeoutMs ?? 0) / 4);
}

/** The running activity's cancellation signal, or undefined outside an activity (adapters pass it to their requests). */
export function currentActivitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/**
 * Runs an activity body with periodic heartbeats (so a dead worker is noticed within the
 * heartbeat timeout, not the start-to-close timeout) and turns domain errors into
 * ApplicationFailures of the same type name, carrying Retry-After into the next retry delay.
 * Unknown errors are re-raised with their message only: no cause chain, which could hold request
 * configs with credentials. Every message passes the redactor, since some quote Portal, Vault or
 * credentials-source bodies; the failure converter then encrypts messages in history as well.
 */
export async function activityBoundary<T>(heartbeatIntervalMs: number, body: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(), heartbeatEveryMs(context, heartbeatIntervalMs));
  try {
    // A cancel (the run was cancelled, or the worker is shutting down) ends the activity now with
    // CancelledFailure; a call already sent is not undone, and every step is safe to redo.
    return await Promise.race([body(), context.cancelled]);
  } catch (error) {
    // A cancellation must reach the SDK as such (the activity is reported cancelled, not failed).
    if (error instanceof CancelledFailure) throw error;
    throw toApplicationFailure(error, msSinceProgress(context));
  } finally {
    clearInterval(timer);
  }
}

/**
 * How long the activity has gone without progress: since `progressAtMs` (the last move of its
 * checkpoint, for activities that keep one), else since it was first scheduled (a step without
 * checkpoints makes its progress all at once, by completing).
 */
export function msSinceProgress(context: Context, progressAtMs?: number): number {
  return Date.now() - (progressAtMs ?? context.info.scheduledTimestampMs);
}

/**
 * `sinceProgressMs`: how long the step has gone without progress, for the pace of its next
 * attempt (retryDelayAfterFailureMs: flaky or down). Portal's Retry-After wins over that pace.
 */
export function toApplicationFailure(error: unknown, sinceProgressMs = 0): ApplicationFailure {
  if (error instanceof ApplicationFailure) {
    error.message = redactSecrets(error.message);
    return error;
  }
  if (error instanceof BackupDomainError) {
    return ApplicationFailure.create({
      type: error.name,
      message: redactSecrets(error.message),
      nonRetryable: !error.retryable,
      ...(error.details !== undefined ? { details: error.details } : {}),
      ...(error.retryAfterMs !== undefined
        ? { nextRetryDelay: Math.max(error.retryAfterMs, 1) }
        : error.retryable
          ? { nextRetryDelay: retryDelayAfterFailureMs(sinceProgressMs) }
          : {}),
    });
  }
  // Every I/O failure is classified by the adapters, so anything else is a bug: retrying it would
  // loop unseen (steps 2-4 retry without limit); not retrying parks the backup where people look.
  const message = redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  return ApplicationFailure.create({ type: 'UnexpectedError', message, nonRetryable: true });
}
