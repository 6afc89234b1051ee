/**
 * Task-queue priorities (contracts/run-priority.ts) on the suite's dev server, with mocked backup
 * activities: a batch's children run with the batch priority, a single backup with the interactive
 * one, and each activity reads its class for Portal's limiter from the priority it inherited.
 */
import { describe, expect, it } from 'vitest';
import type { BackupActivities } from '../../activities';
import { RunPortalDemand } from '../../activities/run-portal-demand';
import { BackupClient } from '../../client/backup-client';
import { BatchClient } from '../../client/batch-client';
import { BATCH_PRIORITY_KEY, INTERACTIVE_PRIORITY_KEY, type PortalDemand } from '../../contracts/run-priority';
import { backupWorkflowId } from '../../domain/user-id';
import { backupActivities, mockedWorker, uniqueId, workflowTestSuite } from './mocked-worker';

const suite = workflowTestSuite();

/** The mocked backup activities, each run's step 1 noting the Portal class its activity finds (as the worker's PortalClient asks it). */
async function workerNotingPriorities() {
  const seen = new Map<string, PortalDemand>();
  const portalDemand = new RunPortalDemand();
  portalDemand.connect(suite.env.client);
  const base = backupActivities().activities;
  const activities: Partial<BackupActivities> = {
    ...base,
    mpcBackup: async (input) => {
      seen.set(input.userId, await portalDemand.current());
      return base.mpcBackup!(input);
    },
  };
  const started = await mockedWorker(suite.env, activities);
  suite.stops.push(() => started.stop());
  return { taskQueue: started.taskQueue, seen };
}

describe('run priorities', () => {
  it("a batch's children run with the batch priority and their activities count as batch at Portal's limiter", async () => {
    const { taskQueue, seen } = await workerNotingPriorities();
    const users = [uniqueId('prio-batch-0'), uniqueId('prio-batch-1')];
    const batches = new BatchClient(suite.env.client, taskQueue);
    const { batchId, workflowId } = await batches.startBatch({ source: { kind: 'list', userIds: users }, concurrency: 2, backupsPerMinute: 6_000 });
    expect((await suite.env.client.workflow.getHandle(workflowId).describe()).priority?.priorityKey).toBe(BATCH_PRIORITY_KEY);
    expect((await batches.wait(batchId)).counts).toMatchObject({ started: 2, completed: 2 });
    for (const userId of users) {
      const child = await suite.env.client.workflow.getHandle(backupWorkflowId(userId)).describe();
      expect(child.priority?.priorityKey, userId).toBe(BATCH_PRIORITY_KEY);
      expect(seen.get(userId), userId).toBe('batch');
    }
  });

  it('a single backup runs with the interactive priority and its activities count as interactive', async () => {
    const { taskQueue, seen } = await workerNotingPriorities();
    const userId = uniqueId('prio-single');
    const backups = new BackupClient(suite.env.client, taskQueue);
    const started = await backups.startBackupWorkflow(userId);
    await backups.waitForBackup(userId, started.runId);
    expect((await suite.env.client.workflow.getHandle(started.workflowId, started.runId).describe()).priority?.priorityKey).toBe(INTERACTIVE_PRIORITY_KEY);
    expect(seen.get(userId)).toBe('interactive');
  });
});
