import { ApprovalsNotConfiguredError, OperatorNotApproverError, OperatorNotVerifiedError } from '../../domain/errors';
import { OperatorActionInvalidError, requireActionFor, signingKeyOf, type ExpectedAction, type OperatorActionSigner, type SignedOperatorAction } from '../../domain/operator-action';
import type { ApprovalDeps } from './approval-activity-types';

export interface VerifyOperatorActionInput {
  action: SignedOperatorAction;
  expected: ExpectedAction;
  /** Approve, reject (by another than the requester), retry and abandon need an approver; a start any verified operator. */
  mustBeApprover: boolean;
}

export interface VerifiedOperator {
  operator: string;
  via: OperatorActionSigner;
}

/**
 * One step, one job: is this signed action the named operator's own, for exactly this act, and (when
 * asked) is that operator an approver? The signature is checked by Vault (`transit/verify`) with
 * the operator's key (`operator-<name>`) or the HTTP API's; nothing the caller authenticates with
 * ever reaches here. Runs as a local activity: its result cannot be completed by id from outside.
 * A bad signature or a non-approver is permanent (the operator's update fails with the reason);
 * Vault unreachable is retried by the local activity's policy, then fails the update (send it again).
 */
export async function verifyOperatorAction(deps: ApprovalDeps, input: VerifyOperatorActionInput): Promise<VerifiedOperator> {
  const { signatures, config } = deps;
  if (!signatures) throw new ApprovalsNotConfiguredError('operator actions cannot be verified here: these workers have no Vault (VAULT_ADDR) for the operators\u2019 signatures');
  let statement;
  try {
    statement = requireActionFor(input.action, input.expected);
  } catch (error) {
    if (error instanceof OperatorActionInvalidError) throw new OperatorNotVerifiedError(error.message);
    throw error;
  }
  const keyName = signingKeyOf(statement, config.keys);
  if (!(await signatures.verify(keyName, input.action.statement, input.action.signature))) {
    throw new OperatorNotVerifiedError(`the signature is not ${statement.operator}'s (checked with Transit key ${keyName}): sign the action with your own key`);
  }
  if (input.mustBeApprover) requireApprover(deps, statement.operator);
  return { operator: statement.operator, via: statement.via };
}

function requireApprover(deps: ApprovalDeps, operator: string): void {
  const approvers = deps.config.approvers;
  if (!approvers) throw new ApprovalsNotConfiguredError('RECOVERY_APPROVERS is not set on these workers: no one can approve, reject, retry or abandon a recovery');
  if (!approvers.includes(operator)) throw new OperatorNotApproverError(`${operator} is not an approver (RECOVERY_APPROVERS): ask one of ${approvers.join(', ')}`);
}
