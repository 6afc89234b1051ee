/**
 * Pieces the per-user workflows (backupWallet, recoverWallet) share: reading the user id from the
 * input, the operator's decision on a parked run, and how an activity's failure is recorded. Pure
 * and deterministic; they add no commands.
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { InvalidUserIdError, parseUserId } from '../domain/user-id';

/** What an operator chose for a parked run. */
export type OperatorDecision = { kind: 'retry' } | { kind: 'abandon'; reason: string };

/** The input's user id, or the failure that ends the run at once (unencrypted input, invalid id). */
export function userIdFromInput(input: { userId?: unknown } | undefined): string {
  if (isUnencryptedPayload(input)) throw ApplicationFailure.nonRetryable(UNENCRYPTED_PAYLOAD_MESSAGE, 'UnencryptedPayloadError');
  try {
    return parseUserId(input?.userId);
  } catch (error) {
    if (error instanceof InvalidUserIdError) throw ApplicationFailure.nonRetryable(error.message, error.name);
    throw error;
  }
}

/** What a failed activity call says: its cause's message (the activity's own error), else the failure's. */
export function activityErrorMessage(error: unknown): string {
  return error instanceof ActivityFailure ? (error.cause?.message ?? error.message) : String(error);
}

/** A step's failure as progress queries and results show it: its type name and (redacted) message. */
export function recordActivityError<S extends string>(step: S, error: ActivityFailure): { step: S; type: string; message: string; at: string } {
  const cause = error.cause;
  const type = cause instanceof ApplicationFailure ? (cause.type ?? 'ApplicationFailure') : (cause?.name ?? 'ActivityFailure');
  return { step, type, message: cause?.message ?? error.message, at: new Date(Date.now()).toISOString() };
}
