import type { Client } from '@temporalio/client';

/** The workflows that park as NEEDS_ATTENTION (BackupStatus) and wait for an operator. */
export const PARKING_WORKFLOW_TYPES = ['backupWallet', 'recoverWallet'] as const;

/**
 * How many backups and recoveries on `taskQueue` are parked as NEEDS_ATTENTION now, by workflow
 * type, from Temporal visibility (the `BackupStatus` search attribute the workflows keep). One
 * count query per type (visibility groups counts by ExecutionStatus only); the gauge caches them.
 */
export async function countParkedBackups(temporal: Client, taskQueue: string): Promise<Record<string, number>> {
  const queue = taskQueue.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
  const counts = await Promise.all(
    PARKING_WORKFLOW_TYPES.map(async (type) => {
      const query = `WorkflowType = '${type}' AND ExecutionStatus = 'Running' AND BackupStatus = 'NEEDS_ATTENTION' AND TaskQueue = '${queue}'`;
      return [type, (await temporal.workflow.count(query)).count] as const;
    }),
  );
  return Object.fromEntries(counts);
}
