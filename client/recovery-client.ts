import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { RecoveryProgress, RecoveryResult } from '../domain/recovery-types';
import { parseUserId, recoveryWorkflowId } from '../domain/user-id';
import { BackupStatusKey, BackupStepKey, type AbandonRequest } from '../contracts/backup-wallet-api';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import type { recoverWallet } from '../workflows/recover-wallet';
import { recoveryAbandonUpdate, recoveryProgressQuery, recoveryRetryUpdate } from '../contracts/recover-wallet-api';
import { BackupNotFoundError, describeFailure, rejectedAsTyped, resultOrFailure } from './backup-client';

export interface StartedRecovery {
  userId: string;
  workflowId: string;
  runId: string;
  /** True when a recovery of this user was already running and was returned instead. */
  alreadyRunning: boolean;
}

export interface RecoveryStatusView {
  userId: string;
  workflowId: string;
  runId: string;
  execution: WorkflowExecutionStatusName;
  status?: string;
  step?: string;
  progress?: RecoveryProgress;
  result?: RecoveryResult;
  failure?: string;
}

const MEMO_START_REQUEST = 'startRequestId';

/** Recovery of users' wallets from their backups, over one Temporal client (see workflows/recover-wallet.ts). */
export class RecoveryClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
  ) {}

  /** Recoveries on this task queue, newest first: status, step, times (`--status` filters, NEEDS_ATTENTION included). */
  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'recoverWallet', idPrefix: 'recover-', parkable: true }, options);
  }

  /**
   * Starts the recovery of one user's wallet from its newest completed backup, or returns the
   * recovery already running for that user. The recovery waits for a running backup of the user.
   */
  async startRecovery(rawUserId: string, options: { freshBackup?: boolean } = {}): Promise<StartedRecovery> {
    const userId = parseUserId(rawUserId);
    const workflowId = recoveryWorkflowId(userId);
    const requestId = randomUUID();
    const handle = await this.temporal.workflow.start<typeof recoverWallet>('recoverWallet', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [{ userId, ...(options.freshBackup === false ? { freshBackup: false } : {}) }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      memo: { [MEMO_START_REQUEST]: requestId },
      typedSearchAttributes: new TypedSearchAttributes([
        { key: BackupStatusKey, value: 'RUNNING' },
        { key: BackupStepKey, value: 'FIND_BACKUP' },
      ]),
    });
    const description = await this.temporal.workflow.getHandle(workflowId, handle.firstExecutionRunId).describe();
    return { userId, workflowId, runId: handle.firstExecutionRunId, alreadyRunning: description.memo?.[MEMO_START_REQUEST] !== requestId };
  }

  async getRecoveryStatus(rawUserId: string): Promise<RecoveryStatusView> {
    const userId = parseUserId(rawUserId);
    const handle = this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId));
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new BackupNotFoundError(`no recovery was ever started for user ${userId}`);
      throw error;
    }
    const view: RecoveryStatusView = { userId, workflowId: description.workflowId, runId: description.runId, execution: description.status.name };
    const status = description.typedSearchAttributes.get(BackupStatusKey);
    const step = description.typedSearchAttributes.get(BackupStepKey);
    if (status !== undefined) view.status = status;
    if (step !== undefined) view.step = step;
    if (description.status.name === 'RUNNING') {
      const progress = await handle.query(recoveryProgressQuery).catch(() => undefined);
      if (progress) view.progress = progress;
    } else if (description.status.name === 'COMPLETED') {
      view.result = await handle.result();
    } else {
      await handle.result().catch((error: unknown) => {
        view.failure = describeFailure(error);
      });
    }
    return view;
  }

  /** Waits for the user's recovery to finish; throws BackupFailedError when it did not complete. */
  async waitForRecovery(rawUserId: string, runId?: string): Promise<RecoveryResult> {
    const userId = parseUserId(rawUserId);
    return resultOrFailure(userId, 'recovery', this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId), runId).result());
  }

  /** Resumes a recovery parked as NEEDS_ATTENTION from the step that failed. */
  async retryRecovery(rawUserId: string, requestedBy?: string): Promise<RecoveryProgress> {
    const userId = parseUserId(rawUserId);
    const handle = this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId));
    return rejectedAsTyped(handle, userId, 'retry', handle.executeUpdate(recoveryRetryUpdate, { args: [requestedBy ? { requestedBy } : {}] }), 'recovery');
  }

  /** Ends a parked recovery; the reason is kept in the run's failure. */
  async abandonRecovery(rawUserId: string, reason: string, requestedBy?: string): Promise<RecoveryProgress> {
    const userId = parseUserId(rawUserId);
    const handle = this.temporal.workflow.getHandle<typeof recoverWallet>(recoveryWorkflowId(userId));
    const request: AbandonRequest = { reason, ...(requestedBy ? { requestedBy } : {}) };
    return rejectedAsTyped(handle, userId, 'abandon', handle.executeUpdate(recoveryAbandonUpdate, { args: [request] }), 'recovery');
  }
}
