/** Client calls that outlive a Temporal restart: the campaign's only way to reach the server. */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An attempt of a `resilient` call that got no answer in time (asked again, like UNAVAILABLE). */
class NoAnswerError extends Error {
  override name = 'NoAnswerError';
}

/** Calls that got no answer within ATTEMPT_TIMEOUT_MS and were asked again, by `what` (in the report). */
const unansweredCalls: Record<string, number> = {};
const ATTEMPT_TIMEOUT_MS = 60_000;

/** The `resilient` calls under way (what, since when), for the campaign's watchdog. */
const activeCalls = new Map<symbol, { what: string; since: number }>();

/** A campaign counts its own unanswered calls: the counts start again with each run. */
export function resetUnansweredCalls(): void {
  for (const what of Object.keys(unansweredCalls)) delete unansweredCalls[what];
}

/** A copy of the counts so far, for the report. */
export function unansweredCallCounts(): Record<string, number> {
  return { ...unansweredCalls };
}

/** The calls under way and how long each has waited, as the watchdog prints them. */
export function callsUnderWay(now = Date.now()): string[] {
  return [...activeCalls.values()].map((c) => `${c.what} ${Math.round((now - c.since) / 1000)} s`);
}

/**
 * Retries a client call through a Temporal restart (the server is briefly unreachable). An attempt
 * that gets no answer within a minute is abandoned and asked again (counted in the report), so a
 * call lost with a killed service cannot hold the campaign. (What first looked like such a call in
 * the 1,000-backup cluster runs was the wait for the key rotation, which the watchdog then named;
 * a long wait like that one shows up in `unansweredCalls` as well.)
 */
export async function resilient<T>(what: string, call: () => Promise<T>, limitMs = 120_000): Promise<T> {
  const key = Symbol(what);
  activeCalls.set(key, { what, since: Date.now() });
  try {
    return await resilientOnce(what, call, limitMs);
  } finally {
    activeCalls.delete(key);
  }
}

async function resilientOnce<T>(what: string, call: () => Promise<T>, limitMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    try {
      const noAnswer = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NoAnswerError(`${what}: no answer in ${ATTEMPT_TIMEOUT_MS} ms`)), ATTEMPT_TIMEOUT_MS);
      });
      return await Promise.race([call(), noAnswer]);
    } catch (error) {
      if (error instanceof NoAnswerError) {
        unansweredCalls[what] = (unansweredCalls[what] ?? 0) + 1;
        if (Date.now() > deadline) throw error;
        continue;
      }
      const name = (error as Error).name;
      if (name === 'BackupActionRejectedError' || Date.now() > deadline) throw error;
      if (name !== 'ServiceError' && name !== 'ConnectionError' && !/UNAVAILABLE|connect|deadline|14 /i.test(String(error))) {
        throw new Error(`${what}: ${String(error)}`);
      }
      await sleep(500);
    } finally {
      clearTimeout(timer);
    }
  }
}
