import type { ActivityDeps, FindOrphanedPairsInput } from '../backup-activity-types';
import { orphanedPairs } from './orphaned-pairs';

/**
 * After step 1 failed for good: the pairs its attempts made at Portal whose responses were lost
 * (incomplete, created since `sinceMs` less the allowed skew), so the failure can name them.
 */
export async function findOrphanedPairs(deps: ActivityDeps, { userId, sinceMs }: FindOrphanedPairsInput): Promise<string[]> {
  const { clientApiKey } = await deps.credentials.load(userId);
  return orphanedPairs(deps.portal, clientApiKey, sinceMs - deps.orphanScanSkewMs, new Set());
}
