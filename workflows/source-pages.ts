/**
 * How a fleet run (batch, drill, rotation) reads a page of its user source. Pure workflow code: no
 * command of its own.
 */
import { ActivityFailure } from '@temporalio/workflow';
import { activityErrorMessage } from './run-helpers';

/** A refused page, as reports show it: which page, why, and what to do. */
export function sourceRefusal(cursor: string | undefined, error: ActivityFailure): string {
  return `the user source refused the ${cursor ? `page at cursor ${cursor}` : 'first page'}: ${activityErrorMessage(error)}; fix the source, then resume the run`;
}

/**
 * The page `fetch` reads, or undefined once a later page failed for good and `pause` was told why
 * (the run then waits for `resume` and asks for the same page again). A refused first page still
 * fails the run: nothing was done yet, and whoever started it learns at once (a source outside
 * the allowed origins, a wrong URL). A later page refused for good (4xx, a malformed page) pauses
 * the run with its report and cursor instead of failing it.
 */
export async function fetchPageOrPause<P>(fetch: () => Promise<P>, cursor: string | undefined, pause: (reason: string) => void): Promise<P | undefined> {
  try {
    return await fetch();
  } catch (error) {
    if (!(error instanceof ActivityFailure) || cursor === undefined) throw error;
    pause(sourceRefusal(cursor, error));
    return undefined;
  }
}
