/**
 * The first step of an act that needs two people, APPROVAL (status AWAITING_APPROVAL): a recovery
 * (workflows/recover-wallet.ts) or an eject (workflows/eject-shares.ts). The requester's signed
 * request is verified, then the run waits until RECOVERY_APPROVALS distinct verified approvers
 * (never the requester) approve, one rejects, or the request expires. Every operator action is a
 * signed statement of that act on this run (domain/operator-action.ts): the update validator
 * checks that it names this act (validators cannot do I/O), and a worker checks the signature and
 * the approvers set in a LOCAL activity (no one can complete it by id from outside).
 */
import { allHandlersFinished, ApplicationFailure, condition, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import type { UpdateDefinition } from '@temporalio/common';
import type { ApprovalActivities, VerifiedOperator } from '../activities/approvals/approval-activities';
import { isUnencryptedPayload, UNENCRYPTED_PAYLOAD_MESSAGE } from '../domain/unencrypted-payload';
import { requireActionFor, type OperatorActionKind, type OperatorActionStatement, type SignedOperatorAction } from '../domain/operator-action';
import type { RecoveryApproval } from '../domain/recovery-types';
import { AWAITING_APPROVAL, RECOVERY_APPROVAL_STEP, type ApprovalRequest } from '../contracts/recover-wallet-api';
import type { AuditEventKind } from '../contracts/audit-events';
import type { BackupStatus } from '../domain/backup-types';
import type { OperatorAuthorization } from './parkable-run';
import { recordAct } from './audit-trail';
import { refusal, signedDecisions, startVerifier, verifier, verifySigned } from './operator-verification';

/** What one kind of act that needs approvals is called, signs, fails with and records. */
export interface ApprovalAct<P> {
  /** How messages name the run: 'recovery', 'eject'. */
  noun: string;
  kinds: { request: OperatorActionKind; approve: OperatorActionKind; reject: OperatorActionKind; retry?: OperatorActionKind; abandon?: OperatorActionKind };
  approveUpdate: UpdateDefinition<P, [ApprovalRequest]>;
  rejectUpdate: UpdateDefinition<P, [ApprovalRequest]>;
  errorTypes: { rejected: string; expired: string; unverified: string };
  auditKinds: { approved: AuditEventKind; rejected: AuditEventKind };
  /** The patch id that guards the approval's audit events (a recovery's were added after its approvals). */
  auditPatch?: string;
  /**
   * Whether the run goes on only once every approval is in the audit trail (the last approver's
   * append may still be under way when the count is reached). Default yes; a recovery asks its patch
   * (recorded histories scheduled FIND_BACKUP without waiting).
   */
  approvalsRecordedFirst?: () => boolean;
  /** What this act's request must also carry (an eject's reason and recipient key): a problem ends the run before anyone is asked to approve. */
  requestProblem?: (statement: OperatorActionStatement) => string | undefined;
}

/** What the gate reads and writes of a run's progress. */
export interface ApprovableProgress {
  userId: string;
  status: BackupStatus;
  approval?: RecoveryApproval;
}

/** What the gate needs of its run (a ParkableRun is one): its progress, the status it publishes, its step timing. */
export interface ApprovalRun<Step extends string, P extends ApprovableProgress> {
  readonly progress: P;
  publish(status: BackupStatus, step: Step | 'DONE'): void;
  timed<T>(step: Step, body: () => Promise<T>): Promise<T>;
}

/** The approval of one run: its updates, its wait, and the check of its retries and abandons. */
export class ApprovalGate<Step extends string, P extends ApprovableProgress> {
  private approval: RecoveryApproval | undefined;
  /** The requester's verified statement (an eject's recipient key is in it). */
  private requested: OperatorActionStatement | undefined;
  /** Operators whose approve or reject a worker is checking now. */
  private readonly inFlight = new Set<string>();
  /** Approved, waiting for the last approvals' audit rows: no decision is taken any more. */
  private closed = false;

  constructor(
    private readonly run: ApprovalRun<Step, P>,
    private readonly act: ApprovalAct<P>,
  ) {
    setHandler(act.approveUpdate, (request) => this.approve(request), { validator: (request) => void this.validate(act.kinds.approve, request) });
    setHandler(act.rejectUpdate, (request) => this.reject(request), { validator: (request) => void this.validate(act.kinds.reject, request) });
  }

  /** Returns the time it was approved; ends the run (typed failure) when the request is unverified, rejected or expired. */
  async awaitApproval(input: { request?: SignedOperatorAction | undefined }): Promise<number> {
    const { run } = this;
    run.publish(AWAITING_APPROVAL, RECOVERY_APPROVAL_STEP as Step);
    const requester = await this.verifyOrEnd(input);
    const policy = await this.policyOrEnd();
    const approval: RecoveryApproval = { requestedBy: requester.operator, required: policy.required, approvedBy: [], expiresAt: new Date(Date.now() + policy.ttlMs).toISOString() };
    this.approval = approval;
    run.progress.approval = approval;
    let decided: boolean;
    try {
      decided = await run.timed(RECOVERY_APPROVAL_STEP as Step, () => condition(() => approval.rejectedBy !== undefined || approval.approvedBy.length >= approval.required, policy.ttlMs));
    } catch (error) {
      // Cancelled while waiting (Web UI, API): nothing was read or made; say so.
      if (isCancellation(error)) run.publish('CANCELLED', RECOVERY_APPROVAL_STEP as Step);
      throw error;
    }
    if (approval.rejectedBy) {
      const { operator, reason } = approval.rejectedBy;
      await this.end(this.act.errorTypes.rejected, `${this.act.noun} of user ${run.progress.userId} was rejected by ${operator}: ${reason}`);
    }
    // Nothing is read or released before every approval is recorded (the last one's append may still run).
    if (decided && (this.act.approvalsRecordedFirst?.() ?? true)) {
      this.closed = true;
      await condition(allHandlersFinished);
    }
    if (!decided) {
      await this.end(
        this.act.errorTypes.expired,
        `${this.act.noun} of user ${run.progress.userId} was not approved in time: ${approval.approvedBy.length} of ${approval.required} approvals by ${approval.expiresAt}; start a new ${this.act.noun}`,
      );
    }
    return Date.now();
  }

  /** The verified operator who requested this run, once checked. */
  requester(): string | undefined {
    return this.approval?.requestedBy;
  }

  /** The requester's verified statement, once checked (an eject's recipient key is in it). */
  request(): OperatorActionStatement | undefined {
    return this.requested;
  }

  /** Retry and abandon of this run need a verified approver's signed action. */
  authorization(): OperatorAuthorization {
    const { retry, abandon } = this.act.kinds;
    if (!retry || !abandon) throw new Error(`a ${this.act.noun} is never retried or abandoned by an operator`);
    return signedDecisions({
      kinds: { retry, abandon },
      userId: this.run.progress.userId,
      mustBeApprover: true,
      howToSign: `an approver signs it with \`backup ${this.act.noun === 'recovery' ? 'recover' : this.act.noun} retry|abandon\` (OPERATOR_NAME and their own VAULT_TOKEN) or a named API token`,
    });
  }

  private validate(kind: OperatorActionKind, request: ApprovalRequest): void {
    if (isUnencryptedPayload(request)) throw new Error(UNENCRYPTED_PAYLOAD_MESSAGE);
    const { progress } = this.run;
    if (progress.status !== AWAITING_APPROVAL) throw new Error(`the ${this.act.noun} of user ${progress.userId} is ${progress.status}, not ${AWAITING_APPROVAL}`);
    if (!this.approval) throw new Error(`the ${this.act.noun} of user ${progress.userId} is still verifying its requester: send it again in a moment`);
    if (this.closed) throw new Error(`the ${this.act.noun} of user ${progress.userId} is already approved`);
    const statement = requireActionFor(request?.action, this.expected(kind));
    if (kind === this.act.kinds.approve && statement.operator === this.approval.requestedBy) {
      throw new Error(`${statement.operator} requested this ${this.act.noun} and cannot approve it: another approver must`);
    }
    if (kind === this.act.kinds.reject && statement.reason === undefined) throw new Error('a rejection needs a reason (signed in the action)');
    if (this.inFlight.has(statement.operator)) throw new Error(`an action of ${statement.operator} on this recovery is being checked: look again in a moment`);
  }

  private async approve(request: ApprovalRequest): Promise<P> {
    const approval = this.approval!;
    const verified = await this.verifyDecision(this.act.kinds.approve, request, true);
    if (verified.operator === approval.requestedBy) throw ApplicationFailure.nonRetryable(`${verified.operator} requested this ${this.act.noun} and cannot approve it`, 'SelfApprovalRefused');
    // The same approver twice counts once (and is recorded once).
    if (approval.approvedBy.some((entry) => entry.operator === verified.operator)) return this.run.progress;
    approval.approvedBy.push({ operator: verified.operator, at: new Date(Date.now()).toISOString() });
    const details = { approvals: approval.approvedBy.length, required: approval.required, requestedBy: approval.requestedBy ?? 'unknown' };
    await recordAct(this.act.auditKinds.approved, { actor: verified.operator, userId: this.run.progress.userId, details, ...this.auditPatch() });
    return this.run.progress;
  }

  private async reject(request: ApprovalRequest): Promise<P> {
    const approval = this.approval!;
    const claimed = requireActionFor(request.action, this.expected(this.act.kinds.reject));
    // The requester may withdraw their own request; anyone else must be an approver.
    const verified = await this.verifyDecision(this.act.kinds.reject, request, claimed.operator !== approval.requestedBy);
    if (approval.rejectedBy === undefined) {
      approval.rejectedBy = { operator: verified.operator, at: new Date(Date.now()).toISOString(), reason: claimed.reason! };
      const details = { reason: claimed.reason!, requestedBy: approval.requestedBy ?? 'unknown' };
      await recordAct(this.act.auditKinds.rejected, { actor: verified.operator, userId: this.run.progress.userId, details, ...this.auditPatch() });
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
    if (this.closed || this.run.progress.status !== AWAITING_APPROVAL || this.approval!.rejectedBy) {
      throw ApplicationFailure.nonRetryable(`the ${this.act.noun} of user ${this.run.progress.userId} is no longer waiting for approval (${this.run.progress.status})`, 'RecoveryNotAwaitingApproval');
    }
    return verified;
  }

  /** A worker's check of a signed action; its refusal becomes the update's failure, with the reason. */
  private verify(input: Parameters<ApprovalActivities['verifyOperatorAction']>[0]): Promise<VerifiedOperator> {
    return verifySigned(input);
  }

  private async verifyOrEnd(input: { request?: SignedOperatorAction | undefined }): Promise<VerifiedOperator> {
    const { noun, kinds, errorTypes } = this.act;
    try {
      // What needs no worker first: a start without a signed request, or one for another act, ends here.
      this.requested = requireActionFor(input.request, this.expected(kinds.request));
      const problem = this.act.requestProblem?.(this.requested);
      if (problem) throw new Error(problem);
    } catch (error) {
      return this.end(errorTypes.unverified, `${noun} of user ${this.run.progress.userId} has no verified requester: ${(error as Error).message}`);
    }
    try {
      return await startVerifier.verifyOperatorAction({ action: input.request!, expected: this.expected(kinds.request), mustBeApprover: false });
    } catch (error) {
      const failure = refusal(error);
      return this.end(failure.type === 'ApprovalsNotConfiguredError' ? failure.type : errorTypes.unverified, `${noun} of user ${this.run.progress.userId} has no verified requester: ${failure.message}`);
    }
  }

  private async policyOrEnd() {
    try {
      return await verifier.recoveryApprovalPolicy();
    } catch (error) {
      const failure = refusal(error);
      return this.end(failure.type ?? 'ApprovalsNotConfiguredError', `${this.act.noun} of user ${this.run.progress.userId} cannot be approved: ${failure.message}`);
    }
  }

  /** Ends the run at APPROVAL with a typed, non-retryable failure (after the updates in flight have answered). */
  private async end(type: string, message: string): Promise<never> {
    this.run.publish('FAILED', RECOVERY_APPROVAL_STEP as Step);
    await condition(allHandlersFinished);
    throw ApplicationFailure.nonRetryable(message, type);
  }

  private expected(kind: OperatorActionKind) {
    const info = workflowInfo();
    return { kind, workflowId: info.workflowId, ...(kind === this.act.kinds.request ? {} : { runId: info.runId }), userId: this.run.progress.userId, nowMs: Date.now() };
  }

  private auditPatch(): { patch?: string } {
    return this.act.auditPatch ? { patch: this.act.auditPatch } : {};
  }
}
