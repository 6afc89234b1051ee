/**
 * Eject under the two-person rule: the requester's signed `eject-request` (its reason, and the
 * one-time X25519 key the shares are sealed to) waits at APPROVAL for RECOVERY_APPROVALS distinct
 * verified approvers, exactly as a recovery does (workflows/approval-gate.ts); each approval is in
 * the audit trail before anything is released. Then RELEASE (activities/eject/) has a worker
 * decrypt the user's newest completed backup and seal it to the requester's key in the company
 * database; the requester collects it with `backup eject collect`. No share, sealed or not, and no
 * credential passes through this history: the run carries ids, names, times and the public key.
 */
import { ActivityFailure, allHandlersFinished, ApplicationFailure, condition, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { EjectActivities } from '../activities/eject/eject-activities';
import {
  EJECT_APPROVAL_EXPIRED_ERROR_TYPE,
  EJECT_REFUSED_ERROR_TYPE,
  EJECT_REJECTED_ERROR_TYPE,
  EJECT_REQUEST_UNVERIFIED_ERROR_TYPE,
  ejectApproveUpdate,
  ejectProgressQuery,
  ejectRejectUpdate,
  type EjectProgress,
  type EjectResult,
  type EjectSharesInput,
  type EjectStep,
} from '../contracts/eject-shares-api';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { BEFORE_NO_RETURN_RETRY, GIVE_UP_AFTER, STEP_OPTIONS } from '../contracts/step-timeouts';
import type { BackupStatus } from '../domain/backup-types';
import { ApprovalGate, type ApprovalAct, type ApprovalRun } from './approval-gate';
import { activityErrorMessage, userIdFromInput } from './run-helpers';

/** Nothing is made by RELEASE: transient errors retry for up to GIVE_UP_AFTER, then the run fails and a new request is needed. */
const releaser = proxyActivities<EjectActivities>({ ...STEP_OPTIONS, scheduleToCloseTimeout: GIVE_UP_AFTER, retry: BEFORE_NO_RETURN_RETRY });

/** An eject's approvals: what they sign, fail with and record. */
const EJECT_APPROVAL: ApprovalAct<EjectProgress> = {
  noun: 'eject',
  kinds: { request: 'eject-request', approve: 'eject-approve', reject: 'eject-reject' },
  approveUpdate: ejectApproveUpdate,
  rejectUpdate: ejectRejectUpdate,
  errorTypes: { rejected: EJECT_REJECTED_ERROR_TYPE, expired: EJECT_APPROVAL_EXPIRED_ERROR_TYPE, unverified: EJECT_REQUEST_UNVERIFIED_ERROR_TYPE },
  auditKinds: { approved: 'eject.approved', rejected: 'eject.rejected' },
  requestProblem: (statement) =>
    statement.reason === undefined ? 'an eject request needs a reason (signed in the request)' : statement.recipient === undefined ? 'an eject request needs the recipient key the shares are sealed to (signed in the request)' : undefined,
};

export async function ejectShares(input: EjectSharesInput): Promise<EjectResult> {
  const run = new EjectRun(userIdFromInput(input));
  const gate = new ApprovalGate(run, EJECT_APPROVAL);
  await gate.awaitApproval(input);
  const request = gate.request()!;
  const approval = run.progress.approval!;
  run.publish('RUNNING', 'RELEASE');
  try {
    run.progress.release = await run.timed('RELEASE', () =>
      releaser.releaseEjectShares({
        userId: run.progress.userId,
        requestedBy: approval.requestedBy!,
        approvedBy: approval.approvedBy.map((entry) => entry.operator),
        reason: request.reason!,
        recipient: request.recipient!,
      }),
    );
  } catch (error) {
    run.publish('FAILED', 'RELEASE');
    const cause = error instanceof ActivityFailure && error.cause instanceof ApplicationFailure ? error.cause.type : undefined;
    // Updates still answering (a late approval being refused) get their answer before the run closes.
    await condition(allHandlersFinished);
    throw ApplicationFailure.nonRetryable(`eject of user ${run.progress.userId} released nothing: ${activityErrorMessage(error)}`, cause ?? EJECT_REFUSED_ERROR_TYPE);
  }
  run.publish('COMPLETED', 'DONE');
  await condition(allHandlersFinished);
  return { userId: run.progress.userId, status: 'RELEASED', approval, release: run.progress.release, stepDurationsMs: run.stepDurationsMs, startedAt: run.progress.startedAt, completedAt: new Date(Date.now()).toISOString() };
}

/** The eject run's progress (the `progress` query), its published status and its step timing. */
class EjectRun implements ApprovalRun<EjectStep, EjectProgress> {
  readonly progress: EjectProgress;
  readonly stepDurationsMs: Partial<Record<EjectStep, number>> = {};

  constructor(userId: string) {
    this.progress = { userId, status: 'RUNNING', step: 'APPROVAL', attempts: {}, startedAt: new Date(Date.now()).toISOString() };
    setHandler(ejectProgressQuery, () => this.progress);
  }

  publish(status: BackupStatus, step: EjectStep | 'DONE'): void {
    if (this.progress.status === status && this.progress.step === step) return;
    this.progress.status = status;
    this.progress.step = step;
    upsertSearchAttributes([
      { key: BackupStatusKey, value: status },
      { key: BackupStepKey, value: step },
    ]);
  }

  async timed<T>(step: EjectStep, body: () => Promise<T>): Promise<T> {
    const started = Date.now();
    this.progress.attempts[step] = (this.progress.attempts[step] ?? 0) + 1;
    try {
      return await body();
    } finally {
      this.stepDurationsMs[step] = (this.stepDurationsMs[step] ?? 0) + Date.now() - started;
    }
  }
}
