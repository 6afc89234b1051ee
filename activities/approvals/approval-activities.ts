import { toApplicationFailure } from '../activity-boundary';
import { ApprovalsNotConfiguredError } from '../../domain/errors';
import type { ApprovalDeps, ApprovalPolicy } from './approval-activity-types';
import { verifyOperatorAction, type VerifiedOperator, type VerifyOperatorActionInput } from './verify-operator-action';

export type * from './approval-activity-types';
export type { VerifiedOperator, VerifyOperatorActionInput } from './verify-operator-action';

/**
 * The recovery's approval step (workflows/recovery-approval.ts): the workers' approval policy and
 * the check of each operator action. Both run as LOCAL activities, so no one can complete them by
 * id with a made-up answer; errors become typed failures at the same boundary as the other steps.
 */
export function createApprovalActivities(deps: ApprovalDeps) {
  const boundary = async <T>(body: () => Promise<T>): Promise<T> => {
    try {
      return await body();
    } catch (error) {
      throw toApplicationFailure(error);
    }
  };
  return {
    /** How many approvals a recovery needs and for how long it waits (RECOVERY_APPROVALS, RECOVERY_APPROVAL_TTL_MS). */
    recoveryApprovalPolicy: (): Promise<ApprovalPolicy> =>
      boundary(async () => {
        if (!deps.config.approvers) throw new ApprovalsNotConfiguredError('RECOVERY_APPROVERS is not set on these workers: a recovery cannot be approved (docs/operations.md, "Operators and approvals")');
        return { required: deps.config.required, ttlMs: deps.config.ttlMs };
      }),
    /** The operator who signed this action, verified (and an approver, when asked); else a typed failure. */
    verifyOperatorAction: (input: VerifyOperatorActionInput): Promise<VerifiedOperator> => boundary(() => verifyOperatorAction(deps, input)),
  };
}

export type ApprovalActivities = ReturnType<typeof createApprovalActivities>;
