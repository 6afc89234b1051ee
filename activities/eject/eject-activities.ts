import { activityBoundary } from '../activity-boundary';
import { releaseEjectShares, type EjectActivityDeps, type ReleaseEjectSharesInput } from './release-eject-shares';

export type { EjectActivityDeps, ReleaseEjectSharesInput } from './release-eject-shares';

/** The eject's worker step (workflows/eject-shares.ts), inside the activity boundary (heartbeats, typed failures, redaction). */
export function createEjectActivities(deps: EjectActivityDeps & { heartbeatIntervalMs: number }) {
  return {
    /** RELEASE: seal the newest completed backup's client shares to the approved requester's key. */
    releaseEjectShares: (input: ReleaseEjectSharesInput) => activityBoundary(deps.heartbeatIntervalMs, () => releaseEjectShares(deps, input)),
  };
}

export type EjectActivities = ReturnType<typeof createEjectActivities>;
