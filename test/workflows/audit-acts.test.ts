/**
 * What the workflows hand the `recordAuditEvent` activity (workflows/audit-trail.ts), with mocked
 * activities: each act once, with a deterministic id that a retried attempt repeats, and no more
 * events across continue-as-new than acts. The database side is test/e2e/audit-trail.test.ts.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { KeyRotationActivities } from '../../activities/rotation/key-rotation-activities';
import type { AuditEventInput, RecordAuditEventResult } from '../../contracts/audit-events';
import { cancelRotationUpdate, emptyRotationCounts, type RotateKeysInput, type RotationReport } from '../../contracts/rotate-keys-api';
import { recoveryApproveUpdate, recoveryProgressQuery } from '../../contracts/recover-wallet-api';
import { recoveryWorkflowId } from '../../domain/user-id';
import { approvalActivities, gate, mockedWorker, mockSigned, realReceipt, workflowTestSuite, uniqueId, until, signedControl, startRotation } from './mocked-worker';

const suite = workflowTestSuite();
const { stops } = suite;

/**
 * A recordAuditEvent that keeps every call; `failFirst` fails each event's first attempt (as a lost
 * answer would make it run again); `forgeFirst` answers it without a worker's receipt, as an
 * activity completed by id from outside would.
 */
function capturingAudit(options: { failFirst?: boolean; forgeFirst?: boolean } = {}) {
  const calls: AuditEventInput[] = [];
  const recordAuditEvent = async (event: AuditEventInput): Promise<RecordAuditEventResult> => {
    const before = calls.filter((call) => call.eventId === event.eventId).length;
    calls.push(event);
    if (options.failFirst && before === 0) throw ApplicationFailure.retryable('the database went away (mocked)', 'DatabaseUnavailableError');
    const answer = { eventId: event.eventId, recorded: true, alreadyRecorded: before > 0 };
    if (options.forgeFirst && before === 0) return answer;
    return { ...answer, receipt: realReceipt('AUDIT_EVENT', { eventId: event.eventId }) };
  };
  return { calls, activities: { recordAuditEvent } };
}

function rotationActivities(hold?: ReturnType<typeof gate>): Partial<KeyRotationActivities> {
  return {
    readTransitKey: async () => ({ keyName: 'mpc-backup', latestVersion: 1, minDecryptionVersion: 1, storeKind: 'mock', custodianShares: false }),
    rotateTransitKey: async () => ({ latestVersion: 2, rotated: true }),
    rewrapUsers: async ({ userIds }) => {
      if (hold) {
        hold.enter();
        await hold.wait;
      }
      return { counts: { ...emptyRotationCounts(), usersVisited: userIds.length }, failures: [], deferred: [] };
    },
  };
}

function rotationInput(userIds: string[], options: Partial<RotateKeysInput> = {}): RotateKeysInput {
  return { rotationId: uniqueId('rot'), source: { kind: 'list', userIds }, usersPerMinute: 6_000, concurrency: 1, usersPerActivity: 1, raiseMinDecryptionVersion: false, ...options };
}

async function worker(activities: object): Promise<string> {
  const started = await mockedWorker(suite.env, activities);
  stops.push(() => started.stop());
  return started.taskQueue;
}

describe('audit events of a key rotation', () => {
  it('records its start and new key version once (first run) and its end once (last run), across continue-as-new; a retried attempt repeats the same id', async () => {
    const audit = capturingAudit({ failFirst: true });
    const taskQueue = await worker({ ...rotationActivities(), ...audit.activities });
    const input = rotationInput([uniqueId('r0'), uniqueId('r1')], { activitiesPerRun: 1 });
    const handle = await startRotation(suite.env, taskQueue, input);
    const report = (await handle.result()) as RotationReport;
    expect(report).toMatchObject({ status: 'COMPLETED', runs: 3 });

    const distinct = [...new Map(audit.calls.map((call) => [call.eventId, call])).values()];
    expect(distinct.map((event) => event.kind)).toEqual(['rotation.started', 'rotation.key_rotated', 'rotation.finished']);
    // Each event's first attempt failed and was retried with the same id: twice each, nothing else.
    expect(audit.calls).toHaveLength(6);
    const [started, rotated, finished] = distinct;
    expect(started).toMatchObject({ actor: 'ops-alice', subject: `${handle.workflowId}/${handle.firstExecutionRunId}`, details: { rotationId: input.rotationId, rotate: true, raiseMinDecryptionVersion: false } });
    expect(rotated!.details).toEqual({ rotationId: input.rotationId, keyName: 'mpc-backup', fromVersion: 1, targetVersion: 2, rotatedByThisRun: true });
    expect(finished!.details).toMatchObject({ rotationId: input.rotationId, status: 'COMPLETED', usersVisited: 2, failures: 0, raised: false });
    expect(finished!.subject).not.toBe(started!.subject);
    expect(started!.eventId).toBe(`${handle.workflowId}/${handle.firstExecutionRunId}/rotation.started`);
  });

  it('an answer without a worker’s receipt (completed from outside) is not taken: each event is appended again', async () => {
    const audit = capturingAudit({ forgeFirst: true });
    const taskQueue = await worker({ ...rotationActivities(), ...audit.activities });
    const handle = await startRotation(suite.env, taskQueue, rotationInput([uniqueId('f0')]));
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED' });
    const ids = audit.calls.map((call) => call.eventId);
    // Every event twice: the forged answer, then the real append (the same id: recorded once).
    expect(ids).toHaveLength(6);
    expect(new Set(ids).size).toBe(3);
    for (const id of new Set(ids)) expect(ids.filter((each) => each === id)).toHaveLength(2);
  });

  it('records the cancel update under its update id, then the end as CANCELLED', async () => {
    const audit = capturingAudit();
    const hold = gate();
    const taskQueue = await worker({ ...rotationActivities(hold), ...audit.activities });
    // Released before the worker stops, whatever the test did.
    stops.unshift(async () => hold.open());
    const handle = await startRotation(suite.env, taskQueue, rotationInput([uniqueId('rc0'), uniqueId('rc1')]));
    await hold.entered;
    const cancel = await handle.startUpdate(cancelRotationUpdate, { args: [await signedControl(handle, 'cancel')], waitForStage: 'ACCEPTED', updateId: uniqueId('cancel-update') });
    expect((await cancel.result()).status).toBe('CANCELLING');
    hold.open();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED' });
    const kinds = audit.calls.map((call) => call.kind);
    expect(kinds).toEqual(['rotation.started', 'rotation.key_rotated', 'fleet.cancelled', 'rotation.finished']);
    const cancelled = audit.calls[2]!;
    expect(cancelled).toMatchObject({ eventId: `${handle.workflowId}/${handle.firstExecutionRunId}/fleet.cancelled/${cancel.updateId}`, details: { fleetRun: 'rotation' } });
    expect(audit.calls[3]!.details).toMatchObject({ status: 'CANCELLED' });
  });

  it('a Temporal cancel (Web UI, CLI: no operator signature) is recorded too: fleet.cancelled by unidentified, via temporal-cancel', async () => {
    const audit = capturingAudit();
    const hold = gate();
    const taskQueue = await worker({ ...rotationActivities(hold), ...audit.activities });
    stops.unshift(async () => hold.open());
    const handle = await startRotation(suite.env, taskQueue, rotationInput([uniqueId('rt0'), uniqueId('rt1')]));
    await hold.entered;
    await handle.cancel();
    await until('the cancel to be recorded', async () => (audit.calls.some((call) => call.kind === 'fleet.cancelled') ? true : undefined));
    hold.open();
    expect(await handle.result()).toMatchObject({ status: 'CANCELLED' });
    expect(audit.calls.map((call) => call.kind)).toEqual(['rotation.started', 'rotation.key_rotated', 'fleet.cancelled', 'rotation.finished']);
    expect(audit.calls[2]).toMatchObject({ actor: 'unidentified', eventId: `${handle.workflowId}/${handle.firstExecutionRunId}/fleet.cancelled/temporal-cancel`, details: { fleetRun: 'rotation', via: 'temporal-cancel' } });
  });
});

describe('audit events of a recovery: approved, started, cancelled before the point of no return', () => {
  it('records each approval by its verified approver, the start by its verified requester once approved, and, cancelled at FIND_BACKUP, its end', async () => {
    const audit = capturingAudit();
    const hold = gate();
    const taskQueue = await worker({
      findRecoverableBackup: async () => {
        hold.enter();
        await hold.wait;
        throw ApplicationFailure.nonRetryable('not reached (mocked)', 'NoCompletedBackupError');
      },
      ...approvalActivities({ required: 2 }),
      ...audit.activities,
    });
    stops.unshift(async () => hold.open());
    const userId = uniqueId('audit-rcancel');
    const workflowId = recoveryWorkflowId(userId);
    const request = mockSigned({ kind: 'recover-start', workflowId, userId, operator: 'ops-carol' });
    const handle = await suite.env.client.workflow.start('recoverWallet', { taskQueue, workflowId, args: [{ userId, freshBackup: false, request }] });
    await until('the run to await approval', async () => ((await handle.query(recoveryProgressQuery)).approval ? true : undefined));
    const approve = (operator: string) =>
      handle.executeUpdate(recoveryApproveUpdate, { args: [{ action: mockSigned({ kind: 'recover-approve', workflowId, runId: handle.firstExecutionRunId, userId, operator }) }] });
    await approve('ops-alice');
    await approve('ops-alice'); // the same approver twice: counted, and recorded, once
    await approve('ops-bob');
    await hold.entered;
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(audit.calls.map((call) => [call.kind, call.actor, call.userId, call.details])).toEqual([
      ['recovery.approved', 'ops-alice', userId, { approvals: 1, required: 2, requestedBy: 'ops-carol' }],
      ['recovery.approved', 'ops-bob', userId, { approvals: 2, required: 2, requestedBy: 'ops-carol' }],
      ['recovery.started', 'ops-carol', userId, { freshBackup: false }],
      ['recovery.cancelled', expect.any(String), userId, { step: 'FIND_BACKUP' }],
    ]);
  });
});
