import { activityBoundary } from '../activity-boundary';
import { checkDrillUsers } from './check-drill-users';
import type { CheckDrillUsersInput, DrillActivityDeps } from './drill-activity-types';

export type * from './drill-activity-types';

/** Activities of the restore drill: one check per user, reading only (check-drill-users.ts, drill-checks.ts). */
export function createDrillActivities(deps: DrillActivityDeps) {
  return {
    checkDrillUsers: (input: CheckDrillUsersInput) => activityBoundary(deps.heartbeatIntervalMs, () => checkDrillUsers(deps, input)),
  };
}

export type DrillActivities = ReturnType<typeof createDrillActivities>;
