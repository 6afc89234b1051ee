/**
 * A recovery's first step, APPROVAL (status AWAITING_APPROVAL): the requester's signed start is
 * verified, then the run waits until RECOVERY_APPROVALS distinct verified approvers (never the
 * requester) approve, one rejects, or the request expires. Every operator action is a signed
 * statement of that act on this run (domain/operator-action.ts): the update validator checks that
 * it names this act (validators cannot do I/O), and a worker checks the signature and the approvers
 * set in a LOCAL activity (no one can complete it by id from outside).
 */
import { allHandlersFinished, ApplicationFailure, condition, isCancellation, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ApprovalActivities, VerifiedOperator } from '../activities/approvals/approval-activities';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { requireActionFor, type OperatorActionKind } from '../domain/operator-action';
import type { RecoveryApproval, RecoveryProgress, RecoveryStep } from '../domain/recovery-types';
import {
  AWAITING_APPROVAL,
  RECOVERY_APPROVAL_EXPIRED_ERROR_TYPE,
  RECOVERY_APPROVAL_STEP,
  RECOVERY_REJECTED_ERROR_TYPE,
  RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE,
  recoveryApproveUpdate,
  recoveryRejectUpdate,
  type ApprovalRequest,
  type RecoverWalletInput,
} from '../contracts/recover-wallet-api';
import type { OperatorAuthorization, ParkableRun } from './parkable-run';
import { recordAct } from './audit-trail';
import { AUDIT_APPROVALS_PATCH } from '../contracts/audit-events';
import { refusal, signedDecisions, verifier, verifySigned } from './operator-verification';

/** The requester's check at the start: a Vault outage must not end the request, so it retries for up to an hour (a bad signature still ends it at once). */
const requesterVerifier = proxyLocalActivities<ApprovalActivities>({
  startToCloseTimeout: '15 seconds',
  scheduleToCloseTimeout: '1 hour',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

type RecoveryRun = ParkableRun<RecoveryStep, RecoveryProgress>;

/** The approval of one recovery run: its updates, its wait, and the check of its retries and abandons. */
export class RecoveryApprovalGate {
  private approval: RecoveryApproval | undefined;
  /** Operators whose approve or reject a worker is checking now. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly run: RecoveryRun) {
    setHandler(recoveryApproveUpdate, (request) => this.approve(request), { validator: (request) => void this.validate('recover-approve', request) });
    setHandler(recoveryRejectUpdate, (request) => this.reject(request), { validator: (request) => void this.validate('recover-reject', request) });
  }

  /** Returns the time it was approved; ends the run (typed failure) when the request is unverified, rejected or expired. */
  async awaitApproval(input: RecoverWalletInput): Promise<number> {
    const { run } = this;
    run.publish(AWAITING_APPROVAL, RECOVERY_APPROVAL_STEP);
    const requester = await this.verifyOrEnd(input);
    const policy = await this.policyOrEnd();
    const approval: RecoveryApproval = { requestedBy: requester.operator, required: policy.required, approvedBy: [], expiresAt: new Date(Date.now() + policy.ttlMs).toISOString() };
    this.approval = approval;
    run.progress.approval = approval;
    let decided: boolean;
    try {
      decided = await run.timed(RECOVERY_APPROVAL_STEP, () => condition(() => approval.rejectedBy !== undefined || approval.approvedBy.length >= approval.required, policy.ttlMs));
    } catch (error) {
      // Cancelled while waiting (Web UI, API): nothing was read or made; say so.
      if (isCancellation(error)) run.publish('CANCELLED', RECOVERY_APPROVAL_STEP);
      throw error;
    }
    if (approval.rejectedBy) {
      const { operator, reason } = approval.rejectedBy;
      await this.end(RECOVERY_REJECTED_ERROR_TYPE, `recovery of user ${run.progress.userId} was rejected by ${operator}: ${reason}`);
    }
    if (!decided) {
      await this.end(
        RECOVERY_APPROVAL_EXPIRED_ERROR_TYPE,
        `recovery of user ${run.progress.userId} was not approved in time: ${approval.approvedBy.length} of ${approval.required} approvals by ${approval.expiresAt}; start a new recovery`,
      );
    }
    return Date.now();
  }

  /** The verified operator who requested this recovery, once checked. */
  requester(): string | undefined {
    return this.approval?.requestedBy;
  }

  /** Retry and abandon of this run need a verified approver's signed action. */
  authorization(): OperatorAuthorization {
    return signedDecisions({
      kinds: { retry: 'recover-retry', abandon: 'recover-abandon' },
      userId: this.run.progress.userId,
      mustBeApprover: true,
      howToSign: 'an approver signs it with `backup recover retry|abandon` (OPERATOR_NAME and their own VAULT_TOKEN) or a named API token',
    });
  }

  private validate(kind: OperatorActionKind, request: ApprovalRequest): void {
    if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
    const { progress } = this.run;
    if (progress.status !== AWAITING_APPROVAL) throw new Error(`the recovery of user ${progress.userId} is ${progress.status}, not ${AWAITING_APPROVAL}`);
    if (!this.approval) throw new Error(`the recovery of user ${progress.userId} is still verifying its requester: send it again in a moment`);
    const statement = requireActionFor(request?.action, this.expected(kind));
    if (kind === 'recover-approve' && statement.operator === this.approval.requestedBy) {
      throw new Error(`${statement.operator} requested this recovery and cannot approve it: another approver must`);
    }
    if (kind === 'recover-reject' && statement.reason === undefined) throw new Error('a rejection needs a reason (signed in the action)');
    if (this.inFlight.has(statement.operator)) throw new Error(`an action of ${statement.operator} on this recovery is being checked: look again in a moment`);
  }

  private async approve(request: ApprovalRequest): Promise<RecoveryProgress> {
    const approval = this.approval!;
    const verified = await this.verifyDecision('recover-approve', request, true);
    if (verified.operator === approval.requestedBy) throw ApplicationFailure.nonRetryable(`${verified.operator} requested this recovery and cannot approve it`, 'SelfApprovalRefused');
    // The same approver twice counts once (and is recorded once).
    if (approval.approvedBy.some((entry) => entry.operator === verified.operator)) return this.run.progress;
    approval.approvedBy.push({ operator: verified.operator, at: new Date(Date.now()).toISOString() });
    const details = { approvals: approval.approvedBy.length, required: approval.required, requestedBy: approval.requestedBy ?? 'unknown' };
    await recordAct('recovery.approved', { actor: verified.operator, userId: this.run.progress.userId, details, patch: AUDIT_APPROVALS_PATCH });
    return this.run.progress;
  }

  private async reject(request: ApprovalRequest): Promise<RecoveryProgress> {
    const approval = this.approval!;
    const claimed = requireActionFor(request.action, this.expected('recover-reject'));
    // The requester may withdraw their own request; anyone else must be an approver.
    const verified = await this.verifyDecision('recover-reject', request, claimed.operator !== approval.requestedBy);
    if (approval.rejectedBy === undefined) {
      approval.rejectedBy = { operator: verified.operator, at: new Date(Date.now()).toISOString(), reason: claimed.reason! };
      const details = { reason: claimed.reason!, requestedBy: approval.requestedBy ?? 'unknown' };
      await recordAct('recovery.rejected', { actor: verified.operator, userId: this.run.progress.userId, details, patch: AUDIT_APPROVALS_PATCH });
    }
    await condition(() => this.run.progress.status !== AWAITING_APPROVAL);
    return this.run.progress;
  }

  /** Verifies an approve or reject; refuses it if the run stopped waiting meanwhile. */
  private async verifyDecision(kind: OperatorActionKind, request: ApprovalRequest, mustBeApprover: boolean): Promise<VerifiedOperator> {
    const claimed = requireActionFor(request.action, this.expected(kind)).operator;
    this.inFlight.add(claimed);
    let verified: VerifiedOperator;
    try {
      verified = await this.verify({ action: request.action, expected: this.expected(kind), mustBeApprover });
    } finally {
      this.inFlight.delete(claimed);
    }
    if (this.run.progress.status !== AWAITING_APPROVAL || this.approval!.rejectedBy) {
      throw ApplicationFailure.nonRetryable(`the recovery of user ${this.run.progress.userId} is no longer waiting for approval (${this.run.progress.status})`, 'RecoveryNotAwaitingApproval');
    }
    return verified;
  }

  private verify(input: Parameters<ApprovalActivities['verifyOperatorAction']>[0]): Promise<VerifiedOperator> {
    return verifySigned(input);
  }

  private async verifyOrEnd(input: RecoverWalletInput): Promise<VerifiedOperator> {
    try {
      // What needs no worker first: a start without a signed request, or one for another act, ends here.
      requireActionFor(input.request, this.expected('recover-start'));
    } catch (error) {
      return this.end(RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE, `recovery of user ${this.run.progress.userId} has no verified requester: ${(error as Error).message}`);
    }
    try {
      return await requesterVerifier.verifyOperatorAction({ action: input.request!, expected: this.expected('recover-start'), mustBeApprover: false });
    } catch (error) {
      const failure = refusal(error);
      return this.end(failure.type === 'ApprovalsNotConfiguredError' ? failure.type : RECOVERY_REQUEST_UNVERIFIED_ERROR_TYPE, `recovery of user ${this.run.progress.userId} has no verified requester: ${failure.message}`);
    }
  }

  private async policyOrEnd() {
    try {
      return await verifier.recoveryApprovalPolicy();
    } catch (error) {
      const failure = refusal(error);
      return this.end(failure.type ?? 'ApprovalsNotConfiguredError', `recovery of user ${this.run.progress.userId} cannot be approved: ${failure.message}`);
    }
  }

  /** Ends the run at APPROVAL with a typed, non-retryable failure (after the updates in flight have answered). */
  private async end(type: string, message: string): Promise<never> {
    this.run.publish('FAILED', RECOVERY_APPROVAL_STEP);
    await condition(allHandlersFinished);
    throw ApplicationFailure.nonRetryable(message, type);
  }

  private expected(kind: OperatorActionKind) {
    const info = workflowInfo();
    return { kind, workflowId: info.workflowId, ...(kind === 'recover-start' ? {} : { runId: info.runId }), userId: this.run.progress.userId, nowMs: Date.now() };
  }
}
