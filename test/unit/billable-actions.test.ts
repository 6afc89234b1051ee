/**
 * The benchmark's counting rule for Temporal Cloud billable actions (bench/billable-actions.ts),
 * on real recorded histories: copies of replay fixtures of those commits, kept here as data (the
 * replay suite no longer replays them: their runs took branches that Worker Versioning retired).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countBillableActions, estimateHeartbeats } from '../../bench/billable-actions';
import { historyFromJSON } from '../replay/history-json';

const fixture = (name: string) =>
  historyFromJSON((JSON.parse(readFileSync(join(__dirname, 'recorded-histories', '86e1598', `${name}.json`), 'utf8')) as { history: unknown }).history);

describe('billable actions counted from a history', () => {
  it('a completed backup: one start, four activities, four search-attribute upserts', () => {
    const actions = countBillableActions(fixture('backup-completed'));
    expect(actions).toMatchObject({ starts: 1, activities: 4, searchAttributeUpserts: 4, signals: 0, updates: 0, timers: 0, heartbeats: 0, queries: 0 });
    expect(actions.total).toBe(9);
    expect(actions.historyEvents).toBe(33);
  });

  it('since the BackupStep patch (59a86ca): one upsert, six actions, 32 events', () => {
    const recorded = historyFromJSON(
      (JSON.parse(readFileSync(join(__dirname, 'recorded-histories', '59a86ca', 'backup-completed.json'), 'utf8')) as { history: unknown }).history,
    );
    expect(countBillableActions(recorded)).toMatchObject({ starts: 1, activities: 4, searchAttributeUpserts: 1, total: 6, historyEvents: 32 });
  });

  it('since step receipts (3be52c1): still six actions; the patch marker and its version upsert add two events', () => {
    const recorded = historyFromJSON(
      (JSON.parse(readFileSync(join(__dirname, 'recorded-histories', '3be52c1', 'backup-completed.json'), 'utf8')) as { history: unknown }).history,
    );
    expect(countBillableActions(recorded)).toMatchObject({ starts: 1, activities: 4, searchAttributeUpserts: 1, total: 6, historyEvents: 34 });
  });

  it('counts every attempt of a retried activity (only the last attempt is an event)', () => {
    // Step 1 lost its first response: attempt 2 is recorded, two attempts are billed.
    expect(countBillableActions(fixture('backup-lost-response'))).toMatchObject({ activities: 5, total: 10 });
  });

  it('counts an accepted update, and queries and rejected updates given from outside the history', () => {
    const parked = countBillableActions(fixture('backup-parked-retried'));
    expect(parked).toMatchObject({ starts: 1, activities: 5, searchAttributeUpserts: 6, updates: 1, total: 13 });
    expect(countBillableActions(fixture('backup-parked-retried'), { queries: 2, rejectedUpdates: 1 }).total).toBe(16);
  });

  it('does not bill the patch marker nor its TemporalChangeVersion upsert', () => {
    // Failed step 1 (patched orphan scan): the marker and the TemporalChangeVersion upsert are free.
    expect(countBillableActions(fixture('backup-failed-step1'))).toMatchObject({ starts: 1, activities: 2, searchAttributeUpserts: 1, total: 4 });
  });

  it('counts timers in a batch run', () => {
    expect(countBillableActions(fixture('batch-joined'))).toMatchObject({ starts: 1, timers: 1, activities: 1 });
  });

  it('estimates heartbeats from attempt durations: none for calls shorter than the heartbeat interval', () => {
    const model = { intervalMs: 3_000 };
    expect(estimateHeartbeats(100, 15_000, model)).toBe(0);
    expect(estimateHeartbeats(3_000, 15_000, model)).toBe(1);
    expect(estimateHeartbeats(15_000, 15_000, model)).toBe(2);
    expect(estimateHeartbeats(60_000, 0, model)).toBe(0);
    expect(countBillableActions(fixture('backup-completed'), {}, model).heartbeats).toBe(0);
    // The worker's throttle cap (maxHeartbeatThrottleInterval) lets one through per interval.
    expect(estimateHeartbeats(10_000, 8_000, { intervalMs: 2_000, maxThrottleMs: 2_000 })).toBe(5);
  });
});
