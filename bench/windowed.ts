/** What a windowed run measured: each success's latency (ms), the failures, and the wall time. */
export interface WindowedRun {
  latenciesMs: number[];
  failures: number;
  wallMs: number;
}

/** Runs `one` over `count` items, `concurrency` at a time; each one's latency (ms) and the wall time. */
export async function windowed(count: number, concurrency: number, one: (i: number) => Promise<void>): Promise<WindowedRun> {
  const latenciesMs: number[] = [];
  let failures = 0;
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        try {
          await one(i);
          latenciesMs.push(performance.now() - t0);
        } catch {
          failures += 1;
        }
      }
    }),
  );
  return { latenciesMs, failures, wallMs: Date.now() - started };
}
