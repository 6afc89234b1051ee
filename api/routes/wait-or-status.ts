import type { FastifyReply } from 'fastify';

/**
 * Waits up to `seconds` for the run to end: its result (200), why it did not complete (409), or its
 * status (202). On a timeout the wait's long poll is aborted, so no poll outlives the request.
 */
export async function waitOrStatus(reply: FastifyReply, seconds: number, wait: (signal: AbortSignal) => Promise<unknown>, status: () => Promise<unknown>) {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), seconds * 1000);
  });
  const waiting = wait(abort.signal);
  try {
    const outcome = await Promise.race([waiting, timeout]);
    if (outcome === 'timeout') return reply.code(202).send(await status());
    return reply.code(200).send(outcome);
  } finally {
    clearTimeout(timer);
    abort.abort();
    // The aborted wait rejects; that is expected and must not surface as an unhandled rejection.
    waiting.catch(() => undefined);
  }
}
