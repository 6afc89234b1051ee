import axios, { AxiosInstance } from 'axios';
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { backupWorkflowId, parseUserId } from '../domain/user-id';
import { BatchSourceNotAllowedError, UserSourceRefusedError, UserSourceUnavailableError } from '../domain/errors';
import { activityBoundary } from './activity-boundary';
import { describeZodError } from './response-validation';
import { isTransientHttpStatus } from './http-status';
import { temporalCall } from './temporal-error-classifier';
import { BackupStatusKey, progressQuery } from '../workflows/backup-wallet-api';

export interface BatchActivityDeps {
  temporal: Client;
  http?: AxiosInstance;
  heartbeatIntervalMs: number;
  authHeader?: { name: string; value: string };
  /**
   * Origins a paged user source may be fetched from. The URL comes from workflow input, the
   * credential header from the worker: without this list, whoever starts a batch could send the
   * header anywhere.
   */
  allowedSourceOrigins: string[];
  /** How often awaitBackup looks at a joined run. */
  pollIntervalMs?: number;
}

const pageSchema = z.object({
  userIds: z.array(z.string()),
  nextCursor: z.string().min(1).nullable().optional(),
});

/** Where a backup the batch did not start (it joined it) stands now. */
export interface BackupCheck {
  userId: string;
  state: 'RUNNING' | 'PARKED' | 'COMPLETED' | 'FAILED';
  reason?: string;
}

/** Activities of the batch workflow: paging the user source, skipping recent backups, joining runs. */
export function createBatchActivities(deps: BatchActivityDeps) {
  const http = deps.http ?? axios.create({ timeout: 30_000, maxRedirects: 0 });
  const boundary = <T>(body: () => Promise<T>) => activityBoundary(deps.heartbeatIntervalMs, body);

  return {
    /** One page of the company backend's user list: `GET url?cursor=…&limit=…`. */
    async fetchUserPage(input: { url: string; cursor?: string; limit: number }): Promise<{ userIds: string[]; nextCursor?: string }> {
      return boundary(async () => {
        const origin = URL.canParse(input.url) ? new URL(input.url).origin : undefined;
        if (!origin || !deps.allowedSourceOrigins.includes(origin)) {
          throw new BatchSourceNotAllowedError(
            `the user source ${origin ?? 'URL'} is not an allowed origin for this worker (allowed: ${deps.allowedSourceOrigins.join(', ') || 'none'}); ` +
              'add it to the workers\' BATCH_SOURCE_ALLOWED_ORIGINS, or use a list source',
          );
        }
        let data: unknown;
        try {
          const params = { limit: input.limit, ...(input.cursor ? { cursor: input.cursor } : {}) };
          const headers = deps.authHeader ? { [deps.authHeader.name]: deps.authHeader.value } : {};
          data = (await http.get(input.url, { params, headers })).data;
        } catch (error) {
          const status = (error as { response?: { status?: number } }).response?.status;
          if (!isTransientHttpStatus(status)) {
            throw new UserSourceRefusedError(`the user source ${input.url} refused the page request with ${status}`);
          }
          throw new UserSourceUnavailableError(`the user source ${input.url} failed (${status ?? 'network error'}); will retry`);
        }
        if (typeof data === 'string' && data.trim().length > 0) {
          throw new UserSourceUnavailableError(`the user source ${input.url} answered with a body that is not JSON; will retry`);
        }
        const parsed = pageSchema.safeParse(data);
        if (!parsed.success) {
          throw new UserSourceRefusedError(`the user source returned an unusable page: ${describeZodError(parsed.error)}`);
        }
        // Invalid ids are dropped here, not in the batch: each would fail its backup anyway.
        const userIds = parsed.data.userIds.filter((id) => {
          try {
            parseUserId(id);
            return true;
          } catch {
            Context.current().log.warn('user source returned an invalid user id; skipped', { length: id.length });
            return false;
          }
        });
        return { userIds, ...(parsed.data.nextCursor ? { nextCursor: parsed.data.nextCursor } : {}) };
      });
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

    /**
     * Kept for batches started before checkBackups existed (their histories schedule it).
     * Waits for a backup the batch did not start (it was already running) to finish, or to park:
     * a parked run cannot tell this batch (it is not its child), so its status is polled.
     */
    async awaitBackup(input: { userId: string }): Promise<{ completed: boolean; parked?: boolean; reason?: string }> {
      return boundary(async () => {
        const handle = deps.temporal.workflow.getHandle(backupWorkflowId(input.userId));
        for (;;) {
          const description = await handle.describe();
          if (description.status.name !== 'RUNNING') break;
          if (description.typedSearchAttributes.get(BackupStatusKey) === 'NEEDS_ATTENTION') {
            const progress = await handle.query(progressQuery);
            const error = progress.lastError;
            return { completed: false, parked: true, reason: `parked at ${progress.step}: ${error?.type}: ${error?.message}` };
          }
          await new Promise((resolve) => setTimeout(resolve, deps.pollIntervalMs ?? 2_000));
        }
        try {
          await handle.result();
          return { completed: true };
        } catch (error) {
          if (error instanceof WorkflowFailedError) {
            return { completed: false, reason: error.cause?.message ?? error.message };
          }
          throw error;
        }
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
