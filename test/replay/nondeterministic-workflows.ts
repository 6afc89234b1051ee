/**
 * A deliberately incompatible backupWallet, for the negative check in replay-histories.test.ts:
 * its first command schedules encryptShares where every recorded backup scheduled mpcBackup, so
 * replaying a recorded backup against it must fail with a DeterminismViolationError.
 * Bundled on its own (as a workflowsPath); never registered on a real worker.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../../activities';

const { encryptShares } = proxyActivities<BackupActivities>({ startToCloseTimeout: '2 minutes' });

export async function backupWallet(input: { userId: string }): Promise<unknown> {
  return encryptShares({ userId: input.userId, shares: {} as never });
}
