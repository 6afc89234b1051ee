/**
 * How a workflow checks an operator's signed action (domain/operator-action.ts), written once for
 * every act: the update validator checks that the statement names this very act on this very run
 * (no I/O), then a worker checks the signature, and the approvers set when asked, in a LOCAL
 * activity (no one can complete it by id from outside). A refusal fails the operator's update with
 * the activity's own type and message.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { ApprovalActivities, VerifiedOperator, VerifyOperatorActionInput } from '../activities/approvals/approval-activities';
import { namesUser, requireActionFor, type ExpectedAction, type OperatorActionKind, type OperatorActionStatement } from '../domain/operator-action';
import type { OperatorAuthorization } from './parkable-run';

/** Verification asks Vault: a few quick tries, then the operator's update fails and they send it again. */
export const verifier = proxyLocalActivities<ApprovalActivities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 4 },
});

/**
 * The check of a run's signed start (a recovery's or eject's request, a key rotation's start): a
 * Vault outage must not end the run, so it retries for up to an hour; a bad signature or a
 * non-approver still ends it at once (permanent errors are not retried).
 */
export const startVerifier = proxyLocalActivities<ApprovalActivities>({
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: '1 hour',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** What this run expects a statement of `kind` to name: this workflow, this run (unless a start), the user (unless a fleet run's), now. */
export function expectedAction(kind: OperatorActionKind, userId: string | undefined, options: { start?: boolean } = {}): ExpectedAction {
  const info = workflowInfo();
  return {
    kind,
    workflowId: info.workflowId,
    ...(options.start ? {} : { runId: info.runId }),
    ...(namesUser(kind) && userId !== undefined ? { userId } : {}),
    nowMs: Date.now(),
  };
}

/** The update validator's check of a request's signed action: its statement, or an Error whose message says how to sign. */
export function requireSignedRequest(request: unknown, expected: ExpectedAction, howToSign: string): OperatorActionStatement {
  const action = (request as { action?: unknown } | undefined)?.action;
  if (action === undefined) throw new Error(`this act is signed now: ${howToSign}`);
  return requireActionFor(action, expected);
}

/** A worker's check of a signed action; its refusal becomes the update's failure, with the reason. */
export async function verifySigned(input: VerifyOperatorActionInput): Promise<VerifiedOperator> {
  try {
    // Non-cancellable: a cancel request of the run (a parked run goes on, a fleet run drains) must not fail the operator's check.
    return await CancellationScope.nonCancellable(() => verifier.verifyOperatorAction(input));
  } catch (error) {
    throw refusal(error);
  }
}

/** The typed failure a refused verification reports (the activity's own type and message). */
export function refusal(error: unknown): ApplicationFailure {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (cause instanceof ApplicationFailure) return ApplicationFailure.nonRetryable(cause.message, cause.type ?? 'OperatorNotVerifiedError');
  if (cause instanceof Error) return ApplicationFailure.nonRetryable(cause.message, 'OperatorNotVerifiedError');
  throw error;
}

/** The signed retry and abandon of a parked run (recovery, backup): which kinds, of which user, who may. */
export interface SignedDecisions {
  kinds: { retry: OperatorActionKind; abandon: OperatorActionKind };
  userId: string;
  mustBeApprover: boolean;
  /** What the validator's refusal of an unsigned request says to do. */
  howToSign: string;
  /** Whether this run's history takes the check (a patch); absent: always. */
  applies?: () => boolean;
}

/** A parkable run's authorization (ParkableRun's OperatorAuthorization) from signed retry and abandon actions. */
export function signedDecisions(options: SignedDecisions): OperatorAuthorization {
  const expected = (kind: 'retry' | 'abandon') => expectedAction(options.kinds[kind], options.userId);
  return {
    validate: (kind, request) => {
      const statement = requireSignedRequest(request, expected(kind), options.howToSign);
      if (kind === 'abandon' && statement.reason !== (request as { reason?: unknown }).reason) throw new Error('the abandon reason must be the one signed in the action');
    },
    verify: async (kind, request) => {
      const action = (request as { action: VerifyOperatorActionInput['action'] }).action;
      return (await verifySigned({ action, expected: expected(kind), mustBeApprover: options.mustBeApprover })).operator;
    },
    ...(options.applies ? { applies: options.applies } : {}),
  };
}
