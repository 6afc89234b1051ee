/**
 * "Version 2" of the workflow code for test/e2e/worker-deploy.test.ts: the real workflows, except
 * that backupWallet waits on a timer before step 1. Its first command is a timer where every
 * version-1 backup's was the step's activity, so a version-1 backup history does not replay
 * against it (the test proves that): only Worker Versioning keeps version-1 backups safe.
 * recoverWallet and the others are unchanged, so their version-1 histories do replay.
 * Test-only: bundled by the test, never registered on a real worker.
 */
import { sleep } from '@temporalio/workflow';
import { backupWallet as backupWalletV1 } from '../../workflows/backup-wallet';

export * from '../../workflows/index';

export async function backupWallet(...args: Parameters<typeof backupWalletV1>): ReturnType<typeof backupWalletV1> {
  await sleep(1);
  return backupWalletV1(...args);
}
