import { describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { probeContinueAsNewUpgrade } from '../deploy/continue-as-new-probe';

/**
 * What the dev server (CLI v1.5.1, server 1.29.1, API v1.53) does with a PINNED run's
 * continue-as-new that asks for `initialVersioningBehavior: 'AUTO_UPGRADE'`: its API has no such
 * field, so the request's field is dropped and the next run inherits the pinned version. A batch,
 * drill or rotation chain then stays on the build it started on until it ends (keep that build's
 * workers). The cluster (server 1.31.2) moves it: test/cluster/cluster-worker-deploy.test.ts.
 */
describe('continue-as-new with AUTO_UPGRADE on the dev server', () => {
  it('is not honoured by server 1.29.1: the next run stays on the pinned build', { timeout: 180_000 }, async () => {
    const result = await probeContinueAsNewUpgrade(inject('temporalAddress'));
    expect(result.serverVersion).toBe('1.29.1');
    expect(new Set(result.firstRun)).toEqual(new Set(['v1']));
    expect(new Set(result.nextRun)).toEqual(new Set(['v1']));
  });
});
