import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { describeFailure } from './backup-client';
import { parseUserId } from '../domain/user-id';
import { BackupStatusKey, progressQuery } from '../contracts/backup-wallet-api';
import type { batchBackup } from '../workflows/batch-backup';
import {
  batchProblemsQuery,
  batchProgressQuery,
  batchWorkflowId,
  cancelBatchUpdate,
  MAX_LIST_USER_IDS,
  pauseBatchUpdate,
  resumeBatchUpdate,
  type BatchProblem,
  type BatchProgress,
  type BatchReport,
  type BatchSource,
} from '../contracts/batch-backup-api';
import { listRuns, type ListRunsOptions, type RunListEntry } from './run-list';
import { ClientError } from './client-error';
import type { UpdateDefinition } from '@temporalio/common';
import type { FleetControlRequest } from '../contracts/batch-backup-api';
import type { OperatorSigner } from './operator-signer';
import { sendFleetControl, type FleetControl } from './fleet-controls';
import { BATCH_PRIORITY } from '../contracts/run-priority';

/** Portal's documented limits, requests per minute. */
export const PORTAL_LIMITS = { enclavePerMinute: 50, clientPerMinute: 200 };
/** Portal calls one backup makes: one Enclave call; two stores, two read-backs and one mark. */
export const CALLS_PER_BACKUP = { enclave: 1, client: 5 };
/**
 * Share of Portal's limit a batch paces itself to. The workers' shared limit lets through about
 * 96% of it (its pace leaves slack for a request's way to Portal: pacingFor), and the batch's
 * retries (about 6% more requests at 5% Portal faults) and interactive backups (a tenth of the
 * limit, say) come on top: at 75% the batch's pace, not the limit, sets a batch's wall time.
 */
export const RATE_HEADROOM = 0.75;

/** The backups per minute that keep one batch within Portal's limits (with headroom). */
export function defaultBackupsPerMinute(limits = PORTAL_LIMITS): number {
  const byEnclave = limits.enclavePerMinute / CALLS_PER_BACKUP.enclave;
  const byClient = limits.clientPerMinute / CALLS_PER_BACKUP.client;
  return Math.max(1, Math.floor(Math.min(byEnclave, byClient) * RATE_HEADROOM));
}

/** Batch options that cannot work; the message says which and what is allowed. */
/** A batch that ended without a report (failed, terminated, timed out); the message names the error that ended it. */
export class BatchFailedError extends ClientError {
  override readonly name = 'BatchFailedError';
  readonly kind = 'failed';
}

export class BatchOptionsError extends ClientError {
  override readonly name = 'BatchOptionsError';
  readonly kind = 'invalid';
}

export interface StartBatchOptions {
  source: BatchSource;
  batchId?: string;
  concurrency?: number;
  backupsPerMinute?: number;
  skipIfBackedUpSince?: Date;
  pageSize?: number;
  /** Child starts per workflow run before continue-as-new (default 500). */
  startsPerRun?: number;
  /** History events per workflow run before continue-as-new (default 10,000). */
  maxHistoryEventsPerRun?: number;
}

/** Starts and steers batch re-backups. */
export class BatchClient {
  constructor(
    readonly temporal: Client,
    readonly taskQueue: string,
  ) {}

  /** Batches on this task queue, newest first: status, times, counts (`--status` filters). */
  list(options: ListRunsOptions = {}): Promise<RunListEntry[]> {
    return listRuns(this.temporal, this.taskQueue, { workflowType: 'batchBackup', idPrefix: 'batch-', progress: batchProgressQuery }, options);
  }

  async startBatch(options: StartBatchOptions): Promise<{ batchId: string; workflowId: string; runId: string }> {
    let source = options.source;
    if (source.kind === 'list') {
      if (source.userIds.length === 0) throw new BatchOptionsError('a batch needs at least one user id');
      source.userIds.forEach((id) => parseUserId(id));
      source = { kind: 'list', userIds: [...new Set(source.userIds)] };
      if (source.userIds.length > MAX_LIST_USER_IDS) {
        throw new BatchOptionsError(
          `a list source holds at most ${MAX_LIST_USER_IDS} user ids (this one has ${source.userIds.length}): it travels in the ` +
            'workflow input of every run. Serve the ids from a paged source (--source-url, GET ?cursor=&limit= → ' +
            `{userIds, nextCursor}), or split the file into chunks of ${MAX_LIST_USER_IDS} and start one batch per chunk`,
        );
      }
    }
    const batchId = options.batchId ?? randomUUID();
    const concurrency = options.concurrency ?? 20;
    const backupsPerMinute = options.backupsPerMinute ?? defaultBackupsPerMinute();
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
      throw new BatchOptionsError('concurrency must be a whole number from 1 to 1000');
    }
    if (!(backupsPerMinute > 0)) throw new BatchOptionsError('the rate must be a positive number of backups per minute');
    if (options.skipIfBackedUpSince && Number.isNaN(options.skipIfBackedUpSince.getTime())) {
      throw new BatchOptionsError('skipIfBackedUpSince is not a valid time');
    }
    const workflowId = batchWorkflowId(batchId);
    const handle = await this.temporal.workflow.start<typeof batchBackup>('batchBackup', {
      taskQueue: this.taskQueue,
      workflowId,
      args: [
        {
          batchId,
          source,
          concurrency,
          backupsPerMinute,
          ...(options.skipIfBackedUpSince ? { skipIfBackedUpSince: options.skipIfBackedUpSince.toISOString() } : {}),
          ...(options.pageSize ? { pageSize: options.pageSize } : {}),
          ...(options.startsPerRun ? { startsPerRun: options.startsPerRun } : {}),
          ...(options.maxHistoryEventsPerRun ? { maxHistoryEventsPerRun: options.maxHistoryEventsPerRun } : {}),
        },
      ],
      workflowIdConflictPolicy: 'FAIL',
      // Behind interactive backups (its children carry BATCH_PRIORITY themselves).
      priority: BATCH_PRIORITY,
    });
    return { batchId, workflowId, runId: handle.firstExecutionRunId };
  }

  private handle(batchId: string) {
    return this.temporal.workflow.getHandle<typeof batchBackup>(batchWorkflowId(batchId));
  }

  async status(batchId: string): Promise<BatchProgress | BatchReport> {
    const handle = this.handle(batchId);
    const description = await handle.describe();
    if (description.status.name === 'RUNNING') return handle.query(batchProgressQuery);
    return this.closed(batchId, description.status.name);
  }

  /** Every failed or parked user so far (while running), or the final report. */
  async report(batchId: string): Promise<BatchReport | { problems: BatchProblem[] }> {
    const handle = this.handle(batchId);
    const description = await handle.describe();
    if (description.status.name === 'RUNNING') return { problems: await this.problems(batchId) };
    return this.closed(batchId, description.status.name);
  }

  /** A closed batch: its report, or BatchFailedError naming the typed error that ended it without one. */
  private async closed(batchId: string, execution: string): Promise<BatchReport> {
    return this.handle(batchId).result().catch((error: unknown) => {
      throw new BatchFailedError(`batch ${batchId} ended ${execution} without a report: ${describeFailure(error)}`);
    });
  }

  /** The most recent problems, as the batch itself keeps them (bounded). */
  problems(batchId: string): Promise<BatchProblem[]> {
    return this.handle(batchId).query(batchProblemsQuery);
  }

  /**
   * Every backup the batch started that did not complete, from visibility (each carries the
   * batch's BatchId), with its reason: the full list however large the batch. Backups the batch
   * joined (already running) are in its own recent problems and the workers' logs.
   */
  async listProblems(batchId: string, limit = 1_000): Promise<BatchProblem[]> {
    const query =
      `WorkflowType = 'backupWallet' AND BatchId = '${batchId.replace(/'/g, '')}' AND ` +
      `(BackupStatus IN ('NEEDS_ATTENTION', 'FAILED', 'ABANDONED', 'CANCELLED') OR ExecutionStatus IN ('Failed', 'Canceled', 'Terminated', 'TimedOut'))`;
    const problems: BatchProblem[] = [];
    for await (const execution of this.temporal.workflow.list({ query, pageSize: Math.min(limit, 1_000) })) {
      const userId = execution.workflowId.replace(/^backup-/, '');
      const handle = this.temporal.workflow.getHandle(execution.workflowId, execution.runId);
      if (execution.status.name === 'RUNNING') {
        const progress = await handle.query(progressQuery).catch(() => undefined);
        const error = progress?.lastError;
        const status = execution.typedSearchAttributes.get(BackupStatusKey);
        problems.push({ userId, status: 'NEEDS_ATTENTION', reason: error ? `parked at ${error.step}: ${error.type}: ${error.message}` : `${status}` });
      } else {
        const reason = await handle.result().then(
          () => 'completed',
          (error: unknown) => (error instanceof WorkflowFailedError ? (error.cause?.message ?? error.message) : String(error)),
        );
        problems.push({ userId, status: 'FAILED', reason });
      }
      if (problems.length >= limit) break;
    }
    return problems;
  }

  /** Pause, resume and cancel are signed by `signer` (any verified operator). */
  pause(batchId: string, signer: OperatorSigner | undefined): Promise<BatchProgress> {
    return this.control(batchId, signer, 'pause', pauseBatchUpdate);
  }

  resume(batchId: string, signer: OperatorSigner | undefined): Promise<BatchProgress> {
    return this.control(batchId, signer, 'resume', resumeBatchUpdate);
  }

  /** Stops starting new backups; those in flight finish. The reason, if any, is signed and recorded. */
  cancel(batchId: string, signer: OperatorSigner | undefined, reason?: string): Promise<BatchProgress> {
    return this.control(batchId, signer, 'cancel', cancelBatchUpdate, reason);
  }

  private control(batchId: string, signer: OperatorSigner | undefined, control: FleetControl, update: UpdateDefinition<BatchProgress, [FleetControlRequest]>, reason?: string) {
    return sendFleetControl(this.temporal, signer, { workflowId: batchWorkflowId(batchId), control, update, ...(reason !== undefined ? { reason } : {}) });
  }

  wait(batchId: string): Promise<BatchReport> {
    return this.handle(batchId).result();
  }
}
