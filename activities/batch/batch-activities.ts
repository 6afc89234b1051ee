import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { backupWorkflowId, parseUserId } from '../../domain/user-id';
import { activityBoundary } from '../activity-boundary';
import { userSourcePages, type UserPage, type UserPageRequest, type UserSourceDeps } from '../user-source';
import { temporalCall } from '../../adapters/temporal/temporal-error-classifier';
import { BackupStatusKey, progressQuery } from '../../contracts/backup-wallet-api';

export interface BatchActivityDeps extends UserSourceDeps {
  temporal: Client;
  heartbeatIntervalMs: number;
}

/** Where a backup the batch did not start (it joined it) stands now. */
export interface BackupCheck {
  userId: string;
  state: 'RUNNING' | 'PARKED' | 'COMPLETED' | 'FAILED';
  reason?: string;
}

/** Activities of the batch workflow: paging the user source, skipping recent backups, joining runs. */
export function createBatchActivities(deps: BatchActivityDeps) {
  const fetchPage = userSourcePages(deps);
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);

  return {
    /** One page of the company backend's user list: `GET url?cursor=…&limit=…`. */
    async fetchUserPage(input: UserPageRequest): Promise<UserPage> {
      return boundary(() => fetchPage(input));
    },

    /** The users among `userIds` whose last completed backup closed after `since`. */
    async recentlyBackedUp(input: { userIds: string[]; since: string }): Promise<string[]> {
      return boundary(async () => {
        const ids = input.userIds.map((id) => `'${backupWorkflowId(parseUserId(id))}'`).join(', ');
        const query = `WorkflowType = 'backupWallet' AND ExecutionStatus = 'Completed' AND CloseTime > '${new Date(input.since).toISOString()}' AND WorkflowId IN (${ids})`;
        const recent = new Set<string>();
        await temporalCall('listing recent backups', async () => {
          for await (const execution of deps.temporal.workflow.list({ query })) recent.add(execution.workflowId);
        });
        return input.userIds.filter((id) => recent.has(backupWorkflowId(id)));
      });
    },

    /**
     * One look at backups the batch joined (running when it tried to start them): the batch calls
     * this every few seconds from a timer, so no activity slot is held for a backup's whole life.
     */
    async checkBackups(input: { userIds: string[] }): Promise<BackupCheck[]> {
      return boundary(async () => {
        const checks: BackupCheck[] = [];
        for (const userId of input.userIds) {
          checks.push(await temporalCall(`checking the backup of ${userId}`, () => checkBackup(deps.temporal, userId)));
        }
        return checks;
      });
    },
  };
}

async function checkBackup(temporal: Client, userId: string): Promise<BackupCheck> {
  const handle = temporal.workflow.getHandle(backupWorkflowId(userId));
  let description;
  try {
    description = await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return { userId, state: 'FAILED', reason: 'its backup run no longer exists (deleted by retention or by hand)' };
    throw error;
  }
  if (description.status.name === 'RUNNING') {
    if (description.typedSearchAttributes.get(BackupStatusKey) !== 'NEEDS_ATTENTION') return { userId, state: 'RUNNING' };
    const progress = await handle.query(progressQuery).catch(() => undefined);
    const error = progress?.lastError;
    return { userId, state: 'PARKED', reason: error ? `parked at ${error.step}: ${error.type}: ${error.message}` : 'parked' };
  }
  if (description.status.name === 'COMPLETED') return { userId, state: 'COMPLETED' };
  try {
    await handle.result();
    return { userId, state: 'COMPLETED' };
  } catch (error) {
    if (error instanceof WorkflowFailedError) return { userId, state: 'FAILED', reason: error.cause?.message ?? error.message };
    throw error;
  }
}

export type BatchActivities = ReturnType<typeof createBatchActivities>;
