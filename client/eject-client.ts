import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { newRecipientKeyPair } from '../adapters/sealing/recipient-seal';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { AWAITING_APPROVAL, RECOVERY_APPROVAL_STEP } from '../contracts/recover-wallet-api';
import { ejectApproveUpdate, ejectProgressQuery, ejectRejectUpdate, type EjectProgress, type EjectResult } from '../contracts/eject-shares-api';
import type { OperatorActionKind } from '../domain/operator-action';
import { ejectWorkflowId, parseUserId } from '../domain/user-id';
import type { ejectShares } from '../workflows/eject-shares';
import { BackupActionRejectedError, BackupNotFoundError, rejectedAsTyped, resultOrFailure } from './backup-client';
import { requireSigner, signForCurrentRun, type OperatorSigner } from './operator-signer';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import { userRunStatus, type UserRunStatusView } from './user-run-status';
import { untilRequesterVerified } from './requester-check-wait';

/** What `eject request` writes for the requester: the one-time private key that alone opens the release (mode 0600). */
export interface EjectKeyFile {
  v: 1;
  userId: string;
  workflowId: string;
  publicKey: string;
  privateJwk: Record<string, unknown>;
}

export interface RequestedEject {
  userId: string;
  workflowId: string;
  runId: string;
  keyFile: string;
}

export type EjectStatusView = UserRunStatusView<EjectProgress, EjectResult>;

/**
 * Ejects under the two-person rule (workflows/eject-shares.ts), over one Temporal client: request,
 * approve, reject, status, wait, list. Acts are signed by `signer` (OPERATOR_NAME's own Vault key,
 * or the HTTP API's named token); the shares are collected from the database with the requester's
 * key file (client/eject.ts, `collectEject`), never through Temporal.
 */
export class EjectClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
    readonly signer?: OperatorSigner,
  ) {}

  as(signer: OperatorSigner): EjectClient {
    return new EjectClient(this.temporal, this.taskQueue, signer);
  }

  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'ejectShares', idPrefix: 'eject-', parkable: true }, options);
  }

  /**
   * Requests the eject of one user's client backup shares: writes a one-time key to `keyFile` (a new
   * file, mode 0600: only its holder can open the release), then starts the run with the signed
   * request naming the key's public half. One eject per user at a time.
   */
  async requestEject(rawUserId: string, reason: string, keyFile: string): Promise<RequestedEject> {
    const userId = parseUserId(rawUserId);
    const signer = this.requireSigner('request an eject');
    if (!reason.trim()) throw new BackupActionRejectedError('an eject request needs a reason (e.g. the support ticket): it is signed and kept in the audit trail');
    const workflowId = ejectWorkflowId(userId);
    const keys = await newRecipientKeyPair();
    const file: EjectKeyFile = { v: 1, userId, workflowId, publicKey: keys.publicKey, privateJwk: keys.privateJwk as Record<string, unknown> };
    writeNewPrivateFile(keyFile, `${JSON.stringify(file, null, 2)}\n`);
    try {
      const request = await signer.sign({ kind: 'eject-request', workflowId, userId, reason: reason.trim(), recipient: keys.publicKey });
      const handle = await this.temporal.workflow.start<typeof ejectShares>('ejectShares', {
        taskQueue: this.taskQueue,
        workflowId,
        args: [{ userId, request }],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: new TypedSearchAttributes([
          { key: BackupStatusKey, value: AWAITING_APPROVAL },
          { key: BackupStepKey, value: RECOVERY_APPROVAL_STEP },
        ]),
      });
      return { userId, workflowId, runId: handle.firstExecutionRunId, keyFile };
    } catch (error) {
      rmSync(keyFile, { force: true });
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        throw new BackupActionRejectedError(`an eject of user ${userId} is already under way: see \`eject status ${userId}\`; approve, reject or let it end before requesting another`);
      }
      throw error;
    }
  }

  async approveEject(rawUserId: string): Promise<EjectProgress> {
    const { userId, handle, action } = await this.signedFor(rawUserId, 'eject-approve');
    return rejectedAsTyped(handle, userId, 'approve', handle.executeUpdate(ejectApproveUpdate, { args: [{ action }] }), 'eject');
  }

  async rejectEject(rawUserId: string, reason: string): Promise<EjectProgress> {
    const { userId, handle, action } = await this.signedFor(rawUserId, 'eject-reject', reason.trim());
    return rejectedAsTyped(handle, userId, 'reject', handle.executeUpdate(ejectRejectUpdate, { args: [{ action }] }), 'eject');
  }

  getEjectStatus(rawUserId: string): Promise<EjectStatusView> {
    const userId = parseUserId(rawUserId);
    return userRunStatus(this.temporal, { userId, workflowId: ejectWorkflowId(userId), noun: 'eject' }, ejectProgressQuery);
  }

  /** Waits for the user's eject to be released (or fail: BackupFailedError with the reason). */
  waitForEject(rawUserId: string, runId?: string): Promise<EjectResult> {
    const userId = parseUserId(rawUserId);
    return resultOrFailure(userId, 'eject', this.temporal.workflow.getHandle<typeof ejectShares>(ejectWorkflowId(userId), runId).result());
  }

  private async signedFor(rawUserId: string, kind: OperatorActionKind, reason?: string) {
    const userId = parseUserId(rawUserId);
    const signer = this.requireSigner(`${kind.replace('eject-', '')} an eject`);
    const workflowId = ejectWorkflowId(userId);
    const notFound = (error: unknown) => (error instanceof WorkflowNotFoundError ? new BackupNotFoundError(`no eject was ever requested for user ${userId}`) : error);
    await untilRequesterVerified(this.temporal, workflowId);
    const signed = await signForCurrentRun(this.temporal.workflow, signer, { kind, workflowId, userId, ...(reason !== undefined ? { reason } : {}) }, notFound);
    return { userId, handle: this.temporal.workflow.getHandle<typeof ejectShares>(workflowId, signed.runId), action: signed.action };
  }

  private requireSigner(what: string): OperatorSigner {
    return requireSigner(this.signer, what);
  }
}

/** Writes `text` to a new file only its owner can read; an existing path is never overwritten. */
export function writeNewPrivateFile(path: string, text: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeFileSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
