import { describe, expect, it } from 'vitest';
import { freePortBelow32768 } from '../../stack/free-port';

describe('freePortBelow32768', () => {
  it('never hands out one port twice in a process, even to calls side by side before any server binds (the cluster and dev server pick 16 at once)', async () => {
    // 60 picks from the 120 ports 32648-32767: random picks alone would repeat about 15 of them.
    // (A narrow range at the top, so that the test's brief binds hardly meet another test's servers.)
    const ports = await Promise.all(Array.from({ length: 60 }, () => freePortBelow32768(32_648)));
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) expect(port).toBeGreaterThanOrEqual(32_648);
    for (const port of ports) expect(port).toBeLessThan(32_768);
  });
});
