/** The waits between tries of a process-start dependency: 1 s, doubling, at most 30 s. */
const FIRST_WAIT_MS = 1_000;
const MAX_WAIT_MS = 30_000;

export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Tries `attempt` until it succeeds, waiting out failures `transient` says are passing (a server
 * down or not up yet) with backoff, each reported through `warn` with `describe(error)` and the
 * next wait: a process started during an outage comes up when its dependency does instead of
 * exiting. Any other failure is thrown at once. Used at process start for the company database
 * (db/migrate-when-reachable.ts) and Temporal (worker/connect-when-reachable.ts).
 */
export async function untilReachable<T>(
  attempt: () => Promise<T>,
  options: { transient: (error: unknown) => boolean; describe: (error: unknown) => string; warn: (message: string) => void; sleep?: Sleep },
): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
    try {
      return await attempt();
    } catch (error) {
      if (!options.transient(error)) throw error;
      options.warn(`${options.describe(error)}; trying again in ${Math.round(wait / 1000)} s`);
      await sleep(wait);
    }
  }
}
