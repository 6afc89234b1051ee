import { describe, expect, it } from 'vitest';
import { temporalServerVersions } from '../../stack/tool-binaries';
import { clusterAddress } from '../support/backup-test-env';
import { probeContinueAsNewUpgrade } from '../deploy/continue-as-new-probe';

/**
 * On the cluster (temporal-server 1.31.2), a PINNED run's continue-as-new with
 * `initialVersioningBehavior: 'AUTO_UPGRADE'` starts the next run on the current build: how
 * batches, drills and rotations move to new code (docs/changing-workflows.md).
 */
describe('continue-as-new with AUTO_UPGRADE on the cluster', () => {
  it('moves the next run to the current build', { timeout: 180_000 }, async () => {
    const result = await probeContinueAsNewUpgrade(clusterAddress());
    expect(result.serverVersion).toBe(temporalServerVersions().server);
    expect(new Set(result.firstRun)).toEqual(new Set(['v1']));
    expect(new Set(result.nextRun)).toEqual(new Set(['v2']));
  });
});
