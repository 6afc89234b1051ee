/**
 * Pieces the per-user workflows (backupWallet, recoverWallet) share: reading the user id from the
 * input, the operator's decision on a parked run, and how an activity's failure is recorded. Pure
 * and deterministic; they add no commands.
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { hasReceiptOf, redoStepOf, STEP_RECEIPT_INVALID, type ReceiptStep, type StepReceipt } from '../domain/step-receipt';
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

/**
 * A step's result that no later step may act on: it lacks its receipt (completed from outside the
 * workers, or the codec's refusal marker). The run parks at that step; a retry runs it again.
 */
export class StepResultRefused extends Error {
  constructor(readonly recorded: { step: string; type: string; message: string; at: string }) {
    super(recorded.message);
  }
}

/** `value` if it carries a receipt of `step` (shape only: the next activity checks the MAC), else StepResultRefused. */
export function requireReceipt<T>(step: ReceiptStep, userId: string, value: T): T & { receipt: StepReceipt } {
  if (hasReceiptOf(value, step)) return value;
  throw new StepResultRefused({
    step,
    type: STEP_RECEIPT_INVALID,
    message:
      `the ${step} step's result for user ${userId} carries no receipt: it did not come from a worker of this run ` +
      `(completed from outside, or a payload the workers could not decode). Nothing was done with it; retry to run ${step} again`,
    at: new Date(Date.now()).toISOString(),
  });
}

/** The step a failed activity's StepReceiptInvalidError says to run again, if that is the failure. */
export function redoStepOfFailure(error: ActivityFailure): ReceiptStep | undefined {
  const cause = error.cause;
  if (!(cause instanceof ApplicationFailure) || cause.type !== STEP_RECEIPT_INVALID) return undefined;
  return redoStepOf(cause.details);
}
