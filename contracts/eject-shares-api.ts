/**
 * The public surface of the ejectShares workflow (imported by the workflow, the worker's release
 * activity and clients); deterministic and free of Node APIs. An eject waits for the same
 * approvals as a recovery (the `approve` and `reject` updates, `progress` query, BackupStatus
 * AWAITING_APPROVAL), then RELEASE seals the user's client backup shares to the requester's
 * one-time key; the requester collects them with `backup eject collect`. Filter with
 * `WorkflowType = "ejectShares"`.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { BackupPairIds, BackupStatus } from '../domain/backup-types';
import type { RecoveryApproval } from '../domain/recovery-types';
import type { SignedOperatorAction } from '../domain/operator-action';
import type { ApprovalRequest } from './recover-wallet-api';

export interface EjectSharesInput {
  userId: string;
  /** The requester's signed `eject-request`: its reason, and the one-time X25519 key the shares are sealed to. */
  request?: SignedOperatorAction;
}

export const EJECT_STEPS = ['APPROVAL', 'RELEASE'] as const;
export type EjectStep = (typeof EJECT_STEPS)[number];

export interface EjectProgress {
  userId: string;
  status: BackupStatus;
  step: EjectStep | 'DONE';
  attempts: Partial<Record<EjectStep, number>>;
  approval?: RecoveryApproval;
  /** Once released: the pairs whose shares were sealed, and until when they can be collected. */
  release?: EjectReleaseSummary;
  startedAt: string;
}

/** What RELEASE answers: ids and times only (the sealed text stays in the database). */
export interface EjectReleaseSummary {
  pairIds: BackupPairIds;
  /** The store whose copy was released: the first, in CIPHERTEXT_STORES order, that verified. */
  store: string;
  releasedAt: string;
  expiresAt: string;
}

export interface EjectResult {
  userId: string;
  status: 'RELEASED';
  approval: RecoveryApproval;
  release: EjectReleaseSummary;
  stepDurationsMs: Partial<Record<EjectStep, number>>;
  startedAt: string;
  completedAt: string;
}

export const ejectProgressQuery = defineQuery<EjectProgress>('progress');
/** Approve an eject waiting at APPROVAL (an approver, never the requester; the same one twice counts once). */
export const ejectApproveUpdate = defineUpdate<EjectProgress, [ApprovalRequest]>('approve');
/** Reject it (an approver), or withdraw it (the requester): the run ends with the signed reason. */
export const ejectRejectUpdate = defineUpdate<EjectProgress, [ApprovalRequest]>('reject');

export const EJECT_REJECTED_ERROR_TYPE = 'EjectRejected';
export const EJECT_APPROVAL_EXPIRED_ERROR_TYPE = 'EjectApprovalExpired';
export const EJECT_REQUEST_UNVERIFIED_ERROR_TYPE = 'EjectRequestUnverified';
/** RELEASE found nothing to release (no completed backup, a stored backup that does not restore): audited as eject.refused. */
export const EJECT_REFUSED_ERROR_TYPE = 'EjectRefused';

/** How a sealed release names its run (the JWE's `kid`): the requester's key opens only this one. */
export function ejectReleaseKid(workflowId: string, runId: string): string {
  return `${workflowId}/${runId}`;
}
