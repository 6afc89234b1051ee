/**
 * What the fleet runs (batchBackup, restoreDrill, rotateKeys) share. Every workflow is pinned to the
 * worker deployment version it started on; a fleet run lives for hours across many generations, so
 * each generation moves to the current version when it continues as new.
 */
import type { ContinueAsNewOptions } from '@temporalio/workflow';

/** The next generation starts on the deployment's current version, not the one this run is pinned to. */
export const UPGRADE_ON_CONTINUE_AS_NEW: ContinueAsNewOptions = { initialVersioningBehavior: 'AUTO_UPGRADE' };
