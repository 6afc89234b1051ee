import { describe, expect, it } from 'vitest';
import { BATCH_PRIORITY, BATCH_PRIORITY_KEY, INTERACTIVE_PRIORITY, INTERACTIVE_PRIORITY_KEY, portalDemandOfPriority } from '../../contracts/run-priority';

describe('run priorities (contracts/run-priority.ts)', () => {
  it('interactive runs go before the default and batch runs after it (1 first … 5 last, default 3)', () => {
    expect(INTERACTIVE_PRIORITY_KEY).toBeLessThan(3);
    expect(BATCH_PRIORITY_KEY).toBeGreaterThan(3);
    expect(INTERACTIVE_PRIORITY).toEqual({ priorityKey: INTERACTIVE_PRIORITY_KEY });
    expect(BATCH_PRIORITY).toEqual({ priorityKey: BATCH_PRIORITY_KEY });
  });

  it("an activity's class at Portal's limiter: interactive only for a whole key from 1 to the interactive key; anything else from Temporal is batch", () => {
    expect(portalDemandOfPriority({ priorityKey: 1 })).toBe('interactive');
    expect(portalDemandOfPriority(INTERACTIVE_PRIORITY)).toBe('interactive');
    for (const priority of [BATCH_PRIORITY, { priorityKey: 3 }, { priorityKey: 5 }, {}, undefined, null, { priorityKey: 0 }, { priorityKey: -1 }, { priorityKey: 1.5 }, { priorityKey: Number.NaN }, { priorityKey: '1' }, 'interactive', 2]) {
      expect(portalDemandOfPriority(priority), JSON.stringify(priority)).toBe('batch');
    }
  });
});
