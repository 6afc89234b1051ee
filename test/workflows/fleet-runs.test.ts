/**
 * The paced fleet run (workflows/fleet-run.ts) under batchBackup, restoreDrill and rotateKeys, with
 * mocked activities: pacing and catch-up, pause/resume/cancel, continue-as-new at each boundary, a
 * source that refuses a page mid-run, and the one rule for ids that are not user ids. Assertions
 * are on what the runs did (counts, calls, history events and their order), never on how fast.
 */
import { WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { BatchActivities } from '../../activities/batch/batch-activities';
import type { DrillActivities } from '../../activities/drill/drill-activities';
import type { KeyRotationActivities } from '../../activities/rotation/key-rotation-activities';
import { batchProgressQuery, cancelBatchUpdate, pauseBatchUpdate, resumeBatchUpdate, type BatchBackupInput, type BatchReport } from '../../contracts/batch-backup-api';
import { drillReportQuery, drillVerdictClaims, resumeDrillUpdate, type DrillReport, type DrillUserOutcome, type RestoreDrillInput } from '../../contracts/restore-drill-api';
import { cancelRotationUpdate, emptyRotationCounts, type RotateKeysInput, type RotationReport } from '../../contracts/rotate-keys-api';
import { backupWorkflowId } from '../../domain/user-id';
import { MAX_CATCH_UP_MS, MIN_PACING_SLEEP_MS, nextStartAfter, sortPage } from '../../workflows/fleet-run';
import { backupActivities, eventMs, EventType, gate, historyEvents, mockedWorker, permanent, realReceipt, workflowTestSuite, uniqueId, until, signedControl, startRotation } from './mocked-worker';

const suite = workflowTestSuite();
const { stops } = suite;

/** A gate opened after the test, before its workers stop. */
function held() {
  const g = gate();
  stops.unshift(async () => g.open());
  return g;
}

async function worker(activities: object): Promise<string> {
  const started = await mockedWorker(suite.env, activities);
  stops.push(() => started.stop());
  return started.taskQueue;
}

describe('the pace (pure)', () => {
  const interval = 100;

  it('keeps a fixed schedule: a late start is made up by the next ones, so delays do not add up', () => {
    let next = 0;
    next = nextStartAfter(next, 0, 1, interval); // on time
    expect(next).toBe(100);
    next = nextStartAfter(next, 400, 1, interval); // 300 ms late
    expect(next).toBe(200); // still on the schedule: the next starts go out at once until it is caught up
    next = nextStartAfter(next, 400, 3, interval);
    expect(next).toBe(500);
  });

  it('catches up by at most MAX_CATCH_UP_MS worth of starts after a long stop, not a burst of the whole delay', () => {
    let next = 1_000;
    const now = next + 10 * 60_000; // ten minutes paused
    let burst = 0;
    while (next - now < MIN_PACING_SLEEP_MS && burst < 100_000) {
      next = nextStartAfter(next, now, 1, interval);
      burst += 1;
    }
    // The start that was due, MAX_CATCH_UP_MS worth of the schedule, and the one due now.
    expect(burst).toBeLessThanOrEqual(MAX_CATCH_UP_MS / interval + 2);
    expect(burst).toBeGreaterThan(1); // it does catch up
  });

  it('catches up by at least one interval when the interval is longer than MAX_CATCH_UP_MS', () => {
    const slow = 2 * MAX_CATCH_UP_MS;
    expect(nextStartAfter(0, 10 * slow, 1, slow)).toBe(9 * slow);
  });
});

describe('ids from a source (pure)', () => {
  it('an id that is not a user id is set apart with why, each user id comes once, and one already queued not again', () => {
    const { userIds, invalid } = sortPage(['a-1', 'not valid!', 'b-2', 'a-1', 'queued', ''], ['queued']);
    expect(userIds).toEqual(['a-1', 'b-2']);
    expect(invalid.map((problem) => problem.userId)).toEqual(['not valid!', '']);
    expect(invalid.every((problem) => problem.reason.startsWith('not a valid user id'))).toBe(true);
  });
});

function batchInput(userIds: string[], options: Partial<BatchBackupInput> = {}): BatchBackupInput {
  return { batchId: uniqueId('batch'), source: { kind: 'list', userIds }, concurrency: 5, backupsPerMinute: 6_000, ...options };
}

function startBatch(taskQueue: string, input: BatchBackupInput): Promise<WorkflowHandleWithFirstExecutionRunId> {
  return suite.env.client.workflow.start('batchBackup', { taskQueue, workflowId: `batch-${input.batchId}`, args: [input] });
}

/** Event ids of the history's updates accepted and children started, in order. */
async function updatesAndStarts(handle: WorkflowHandle) {
  return (await historyEvents(handle))
    .filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED || event.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    .map((event) => (event.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED ? 'start' : event.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!.input!.name!));
}

describe('batchBackup (mocked backup activities)', () => {
  it('starts no child before its slot of the pace, however slow the machine', async () => {
    const taskQueue = await worker(backupActivities().activities);
    const users = Array.from({ length: 6 }, (_, i) => uniqueId(`paced-${i}`));
    const handle = await startBatch(taskQueue, batchInput(users, { backupsPerMinute: 300, concurrency: 6 }));
    const report = (await handle.result()) as BatchReport;
    expect(report.counts).toMatchObject({ started: 6, completed: 6, failed: 0 });
    const events = await historyEvents(handle);
    const firstTask = events.find((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)!;
    const starts = events.filter((event) => event.eventType === EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED).map(eventMs);
    const interval = 60_000 / 300;
    starts.forEach((at, k) => expect(at - eventMs(firstTask)).toBeGreaterThanOrEqual(k * interval - MIN_PACING_SLEEP_MS - 1));
  });

  it('pause holds every start (a child that completes frees no slot), resume goes on, and the report counts everyone', async () => {
    const hold = held();
    const users = [uniqueId('pause-0'), uniqueId('pause-1'), uniqueId('pause-2')];
    const taskQueue = await worker(backupActivities({ holdAt: 'MPC_BACKUP', held: hold, holdUser: users[0] }).activities);
    const handle = await startBatch(taskQueue, batchInput(users, { concurrency: 1 }));
    await hold.entered;
    expect((await handle.executeUpdate(pauseBatchUpdate, { args: [await signedControl(handle, 'pause')] })).status).toBe('PAUSED');
    hold.open();
    const whilePaused = await until('the held child to be counted', async () => {
      const progress = await handle.query(batchProgressQuery);
      return progress.counts.completed === 1 ? progress : undefined;
    });
    expect(whilePaused).toMatchObject({ status: 'PAUSED', inFlight: 0, counts: { started: 1 } });
    expect((await handle.executeUpdate(resumeBatchUpdate, { args: [await signedControl(handle, 'resume')] })).status).toBe('RUNNING');
    expect(((await handle.result()) as BatchReport).counts).toMatchObject({ started: 3, completed: 3 });
    expect(await updatesAndStarts(handle)).toEqual(['start', 'pause', 'resume', 'start', 'start']);
  });

  it('a batch paused under one worker is resumed and finished by a new one (the run is replayed from history first)', async () => {
    const users = [uniqueId('wr-0'), uniqueId('wr-1')];
    const before = await mockedWorker(suite.env, backupActivities().activities);
    stops.push(() => before.stop());
    const handle = await startBatch(before.taskQueue, batchInput(users, { concurrency: 1 }));
    await handle.executeUpdate(pauseBatchUpdate, { args: [await signedControl(handle, 'pause')] });
    const paused = await until('the children started before the pause to finish', async () => {
      const progress = await handle.query(batchProgressQuery);
      return progress.inFlight === 0 ? progress : undefined;
    });
    await before.stop();
    const after = backupActivities();
    const again = await mockedWorker(suite.env, after.activities, before.taskQueue);
    stops.push(() => again.stop());
    // Nothing started while paused. (Whether the child's completion is counted by the time the
    // resume is answered depends on whether the old worker's last task was committed before it
    // stopped: the SDK applies an update before the other jobs of the same activation.)
    const resumed = await handle.executeUpdate(resumeBatchUpdate, { args: [await signedControl(handle, 'resume')] });
    expect(resumed.counts.started).toBe(paused.counts.started);
    expect(resumed.counts.failed + resumed.counts.parked).toBe(0);
    expect(((await handle.result()) as BatchReport).counts).toMatchObject({ started: 2, completed: 2 });
    expect(after.users).toEqual(users.slice(paused.counts.started));
  });

  it.each(['the cancel update', 'a Temporal cancel'])('%s: no new start, the backup in flight finishes, and the report is the result', async (how) => {
    const hold = held();
    const users = [uniqueId('cancel-0'), uniqueId('cancel-1'), uniqueId('cancel-2')];
    const taskQueue = await worker(backupActivities({ holdAt: 'MPC_BACKUP', held: hold, holdUser: users[0] }).activities);
    const handle = await startBatch(taskQueue, batchInput(users, { concurrency: 1 }));
    await hold.entered;
    if (how === 'a Temporal cancel') await handle.cancel();
    else expect((await handle.executeUpdate(cancelBatchUpdate, { args: [await signedControl(handle, 'cancel')] })).status).toBe('CANCELLING');
    hold.open();
    const report = (await handle.result()) as BatchReport;
    expect(report).toMatchObject({ status: 'CANCELLED', counts: { started: 1, completed: 1 } });
    const child = suite.env.client.workflow.getHandle(backupWorkflowId(users[0]!));
    expect(await child.result()).toMatchObject({ status: 'COMPLETED' });
  });

  it('continues as new after startsPerRun starts, each run carrying the counts, until the list is done', async () => {
    const mocks = backupActivities();
    const taskQueue = await worker(mocks.activities);
    const users = Array.from({ length: 5 }, (_, i) => uniqueId(`can-${i}`));
    const handle = await startBatch(taskQueue, batchInput(users, { startsPerRun: 2, concurrency: 2 }));
    const report = (await handle.result()) as BatchReport;
    expect(report).toMatchObject({ status: 'COMPLETED', runs: 3, total: 5, counts: { started: 5, completed: 5 } });
    expect(mocks.users.sort()).toEqual([...users].sort());
    const first = suite.env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
    expect((await historyEvents(first)).at(-1)!.eventType).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
  });

  it('a cancel while a continued run drains ends the batch in that run', async () => {
    const hold = held();
    const users = [uniqueId('cdrain-0'), uniqueId('cdrain-1'), uniqueId('cdrain-2')];
    const taskQueue = await worker(backupActivities({ holdAt: 'MPC_BACKUP', held: hold, holdUser: users[0] }).activities);
    const handle = await startBatch(taskQueue, batchInput(users, { startsPerRun: 1, concurrency: 2 }));
    await hold.entered;
    await handle.executeUpdate(cancelBatchUpdate, { args: [await signedControl(handle, 'cancel')] });
    hold.open();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', runs: 1, counts: { started: 1, completed: 1 } });
  });

  it('an id that is not a user id is reported failed and never started', async () => {
    const mocks = backupActivities();
    const taskQueue = await worker(mocks.activities);
    const good = uniqueId('good');
    const report = (await (await startBatch(taskQueue, batchInput([good, 'not a user!', good]))).result()) as BatchReport;
    expect(report.counts).toMatchObject({ started: 1, completed: 1, failed: 1 });
    expect(report.problems).toEqual([expect.objectContaining({ userId: 'not a user!', status: 'FAILED', reason: expect.stringContaining('not a valid user id') })]);
    expect(mocks.users).toEqual([good]);
  });

  it('a page refused mid-run pauses the batch with its counts; resume asks for the same page again and the batch completes', async () => {
    const [a, b, c] = [uniqueId('src-a'), uniqueId('src-b'), uniqueId('src-c')];
    const cursors: (string | undefined)[] = [];
    let refusals = 1;
    const source: Partial<BatchActivities> = {
      fetchUserPage: async ({ cursor }) => {
        cursors.push(cursor);
        if (cursor === undefined) return { userIds: [a, b], nextCursor: 'c1' };
        if (refusals-- > 0) throw permanent('UserSourceRefusedError', 'the user source refused the page request with 400');
        return { userIds: [c] };
      },
    };
    const taskQueue = await worker({ ...backupActivities().activities, ...source });
    const handle = await startBatch(taskQueue, batchInput([], { source: { kind: 'http', url: 'https://users.example/ids' }, pageSize: 2 }));
    const paused = await until('the batch to pause', async () => {
      const progress = await handle.query(batchProgressQuery);
      return progress.status === 'PAUSED' && progress.counts.completed === 2 ? progress : undefined;
    });
    expect(paused.sourceRefused).toContain('cursor c1');
    await handle.executeUpdate(resumeBatchUpdate, { args: [await signedControl(handle, 'resume')] });
    expect(((await handle.result()) as BatchReport).counts).toMatchObject({ started: 3, completed: 3 });
    expect(cursors).toEqual([undefined, 'c1', 'c1']);
  });

  it('a refused first page fails the batch at once: nothing was done yet', async () => {
    const taskQueue = await worker({ fetchUserPage: async () => Promise.reject(permanent('BatchSourceNotAllowedError')) });
    const handle = await startBatch(taskQueue, batchInput([], { source: { kind: 'http', url: 'https://elsewhere.example/ids' } }));
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
  });
});

/** Drill checks that pass every user, with the verdict receipts the workflow checks; `checked` lists each call's users. */
function drillActivities() {
  const checked: string[][] = [];
  const activities: Partial<DrillActivities> = {
    checkDrillUsers: async ({ userIds }) => {
      checked.push(userIds);
      return userIds.map((userId) => {
        const verdict: DrillUserOutcome = { userId, outcome: 'passed' };
        return { ...verdict, receipt: realReceipt('DRILL_VERDICT', drillVerdictClaims(verdict)) };
      });
    },
  };
  return { activities, checked };
}

function startDrill(taskQueue: string, input: RestoreDrillInput): Promise<WorkflowHandle> {
  return suite.env.client.workflow.start('restoreDrill', { taskQueue, workflowId: uniqueId('drill'), args: [input] });
}

describe('restoreDrill (mocked checks)', () => {
  it('continues as new after checksPerRun checks; an id that is not a user id is reported inconclusive, never checked', async () => {
    const mocks = drillActivities();
    const taskQueue = await worker(mocks.activities);
    const users = [uniqueId('d0'), uniqueId('d1'), uniqueId('d2')];
    const handle = await startDrill(taskQueue, { source: { kind: 'list', userIds: [...users, 'bad id!'] }, usersPerMinute: 6_000, pageSize: 1, checksPerRun: 1 });
    const report = (await handle.result()) as DrillReport;
    // Pages of one: a run per check, and the last for the page with the bad id.
    expect(report).toMatchObject({ status: 'COMPLETED', runs: 4, counts: { checked: 4, passed: 3, inconclusive: 1 } });
    expect(report.inconclusive).toEqual([expect.objectContaining({ userId: 'bad id!' })]);
    expect(mocks.checked.flat()).toEqual(users);
  });

  it('a page refused mid-run pauses the drill; resume asks for the page again, and a resume when not paused is refused', async () => {
    const mocks = drillActivities();
    const [a, b] = [uniqueId('dsrc-a'), uniqueId('dsrc-b')];
    const cursors: (string | undefined)[] = [];
    let refusals = 1;
    const source: Partial<BatchActivities> = {
      fetchUserPage: async ({ cursor }) => {
        cursors.push(cursor);
        if (cursor === undefined) return { userIds: [a], nextCursor: 'c1' };
        if (refusals-- > 0) throw permanent('UserSourceRefusedError');
        return { userIds: [b] };
      },
    };
    const taskQueue = await worker({ ...mocks.activities, ...source });
    const handle = await startDrill(taskQueue, { source: { kind: 'http', url: 'https://users.example/ids' }, usersPerMinute: 6_000 });
    await until('the drill to pause', async () => ((await handle.query(drillReportQuery)).status === 'PAUSED' ? true : undefined));
    expect((await handle.query(drillReportQuery)).counts.passed).toBe(1);
    await handle.executeUpdate(resumeDrillUpdate, { args: [await signedControl(handle, 'resume')] });
    await expect(handle.executeUpdate(resumeDrillUpdate, { args: [await signedControl(handle, 'resume')] })).rejects.toThrow();
    expect(((await handle.result()) as DrillReport).counts).toMatchObject({ checked: 2, passed: 2 });
    expect(cursors).toEqual([undefined, 'c1', 'c1']);
  });
});

/** A key rotation's activities: the key goes from version 1 to 2; every rewrap visits its users. */
function rotationActivities(hold?: ReturnType<typeof gate>) {
  const rewrapped: string[][] = [];
  const activities: Partial<KeyRotationActivities> = {
    readTransitKey: async () => ({ keyName: 'mpc-backup', latestVersion: 1, minDecryptionVersion: 1, storeKind: 'mock', custodianShares: false }),
    rotateTransitKey: async () => ({ latestVersion: 2, rotated: true }),
    rewrapUsers: async ({ userIds }) => {
      rewrapped.push(userIds);
      if (hold) {
        hold.enter();
        await hold.wait;
      }
      return { counts: { ...emptyRotationCounts(), usersVisited: userIds.length }, failures: [], deferred: [] };
    },
  };
  return { activities, rewrapped };
}

function rotationInput(userIds: string[], options: Partial<RotateKeysInput> = {}): RotateKeysInput {
  return { rotationId: uniqueId('rot'), source: { kind: 'list', userIds }, usersPerMinute: 6_000, concurrency: 1, usersPerActivity: 1, raiseMinDecryptionVersion: false, ...options };
}

describe('rotateKeys (mocked key and rewrap activities)', () => {
  it('continues as new after activitiesPerRun rewraps without rotating again; an id that is not a user id is a failed user', async () => {
    const mocks = rotationActivities();
    const taskQueue = await worker(mocks.activities);
    const users = [uniqueId('r0'), uniqueId('r1'), uniqueId('r2')];
    const handle = await startRotation(suite.env, taskQueue, rotationInput([...users, 'bad id!'], { activitiesPerRun: 1 }));
    const report = (await handle.result()) as RotationReport;
    // A run per rewrap, and a last one that finds the source done.
    expect(report).toMatchObject({ status: 'COMPLETED_WITH_FAILURES', runs: 4, counts: { usersVisited: 3, usersFailed: 1 }, key: { fromVersion: 1, targetVersion: 2 } });
    expect(report.failures).toEqual([expect.objectContaining({ userId: 'bad id!', kind: 'user' })]);
    expect(mocks.rewrapped.flat()).toEqual(users);
  });

  it('a user deferred (its backup was running) travels across continue-as-new and is rewrapped when looked at again', async () => {
    const user = uniqueId('deferred');
    let visits = 0;
    const taskQueue = await worker({
      ...rotationActivities().activities,
      rewrapUsers: async ({ userIds }: { userIds: string[] }) =>
        visits++ === 0
          ? { counts: { ...emptyRotationCounts(), usersDeferred: 1 }, failures: [], deferred: userIds }
          : { counts: { ...emptyRotationCounts(), usersVisited: userIds.length }, failures: [], deferred: [] },
    });
    const input = rotationInput([user], { activitiesPerRun: 1, deferredRecheckMs: 50 });
    const handle = await startRotation(suite.env, taskQueue, input);
    const report = (await handle.result()) as RotationReport;
    expect(report).toMatchObject({ status: 'COMPLETED', runs: 2, deferredCount: 0, counts: { usersVisited: 1 } });
    expect(visits).toBe(2);
  });

  it('a cancel while a rewrap is in flight: that rewrap finishes, nothing new starts, the report is the result', async () => {
    const hold = held();
    const mocks = rotationActivities(hold);
    const taskQueue = await worker(mocks.activities);
    const handle = await startRotation(suite.env, taskQueue, rotationInput([uniqueId('rc0'), uniqueId('rc1')]));
    await hold.entered;
    expect((await handle.executeUpdate(cancelRotationUpdate, { args: [await signedControl(handle, 'cancel')] })).status).toBe('CANCELLING');
    hold.open();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED', counts: { usersVisited: 1 } });
    expect(mocks.rewrapped).toHaveLength(1);
  });
});
