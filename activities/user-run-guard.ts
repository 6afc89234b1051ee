import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { backupWorkflowId, recoveryWorkflowId } from '../domain/user-id';
import { OtherRunParkedError, UserRunInProgressError } from '../domain/errors';
import { BackupStatusKey, BackupStepKey } from '../contracts/backup-wallet-api';
import { AWAITING_APPROVAL, RECOVERY_FRESH_BACKUP_STEP } from '../contracts/recover-wallet-api';
import { temporalCall } from '../adapters/temporal/temporal-error-classifier';

/** The run asking: its workflow id and run id (from the activity's info). */
export interface RunRef {
  workflowId: string;
  runId: string;
}

/**
 * Keeps a user's backup and recovery apart: neither goes ahead while the other runs. Checked by
 * the first step of each, before it asks Portal for anything. The one that started first goes
 * ahead and the later one waits (retryable), so two started together cannot wait on each other;
 * a parked other run makes the check fail at once, saying what to do. The run that started later
 * always sees the earlier one (it existed before the later run's check), so they never overlap.
 */
export interface UserRunGuard {
  /** For a recovery: wait while a backup of the user that started earlier (than its approval, `sinceMs`, when given) runs. */
  assertNoBackupRunning(userId: string, self: RunRef | undefined, sinceMs?: number): Promise<void>;
  /** For a backup: wait while a recovery of the user that started earlier runs. */
  assertNoRecoveryRunning(userId: string, self: RunRef | undefined): Promise<void>;
}

interface RunningRun {
  status?: string;
  step?: string;
  startMs: number;
}

export class TemporalUserRunGuard implements UserRunGuard {
  constructor(private readonly temporal: Client) {}

  async assertNoBackupRunning(userId: string, self: RunRef | undefined, sinceMs?: number): Promise<void> {
    const other = await this.running(backupWorkflowId(userId));
    if (!other) return;
    if (other.status === 'NEEDS_ATTENTION') {
      throw new OtherRunParkedError(
        `the backup of user ${userId} is parked as NEEDS_ATTENTION: retry or abandon it (backup retry|abandon ${userId}), then start the recovery again`,
      );
    }
    // Equal start times: the recovery goes first (the backup yields, below).
    if (other.startMs < (sinceMs ?? (await this.startMs(self)))) {
      throw new UserRunInProgressError(`the backup of user ${userId} is running; the recovery waits for it to finish`);
    }
  }

  async assertNoRecoveryRunning(userId: string, self: RunRef | undefined): Promise<void> {
    const other = await this.running(recoveryWorkflowId(userId));
    // A recovery's last step starts this very backup: that one may go ahead.
    if (!other || other.step === RECOVERY_FRESH_BACKUP_STEP) return;
    // A recovery waiting for approvals has read and made nothing: the backup goes ahead, and the
    // recovery, once approved, waits for it (it counts as started when approved).
    if (other.status === AWAITING_APPROVAL) return;
    if (other.status === 'NEEDS_ATTENTION') {
      throw new OtherRunParkedError(
        `the recovery of user ${userId} is parked as NEEDS_ATTENTION: retry or abandon it (backup recover retry|abandon ${userId}) before backing up`,
      );
    }
    if (other.startMs <= (await this.startMs(self))) {
      throw new UserRunInProgressError(`the recovery of user ${userId} is running; the backup waits for it to finish`);
    }
  }

  /** When the asking run started; a caller outside a workflow counts as started last (it yields). */
  private async startMs(self: RunRef | undefined): Promise<number> {
    if (!self) return Number.POSITIVE_INFINITY;
    const description = await temporalCall(`describing ${self.workflowId}`, () => this.temporal.workflow.getHandle(self.workflowId, self.runId).describe());
    return description.startTime.getTime();
  }

  /** The run's status, step (search attributes) and start time when it is running, else undefined. */
  private async running(workflowId: string): Promise<RunningRun | undefined> {
    const description = await temporalCall(`checking ${workflowId}`, async () => {
      try {
        return await this.temporal.workflow.getHandle(workflowId).describe();
      } catch (error) {
        if (error instanceof WorkflowNotFoundError) return undefined;
        throw error;
      }
    });
    if (description?.status.name !== 'RUNNING') return undefined;
    const attributes = description.typedSearchAttributes;
    return { status: attributes.get(BackupStatusKey), step: attributes.get(BackupStepKey), startMs: description.startTime.getTime() };
  }
}
