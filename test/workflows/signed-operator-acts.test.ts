/**
 * The operator acts besides a recovery's (workflows/operator-verification.ts): a backup's retry and
 * abandon, a fleet run's pause, resume and cancel. Each is refused without the operator's signed
 * statement of that act on that run (the validator says how to sign), refused when the signature
 * is not the named operator's, and recorded in the audit trail under the verified operator.
 * Signatures are mocked (mocked-worker.ts approvalActivities); the real Vault check is in test/e2e/.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { AuditEventInput, RecordAuditEventResult } from '../../contracts/audit-events';
import { abandonUpdate, progressQuery, retryUpdate } from '../../contracts/backup-wallet-api';
import { cancelBatchUpdate, pauseBatchUpdate, resumeBatchUpdate, type BatchBackupInput } from '../../contracts/batch-backup-api';
import { backupWorkflowId } from '../../domain/user-id';
import { WorkflowFailedError } from '@temporalio/client';
import type { RotateKeysInput } from '../../contracts/rotate-keys-api';
import { backupActivities, mockedWorker, mockSigned, realReceipt, signedControl, startRotation, uniqueId, until, workflowTestSuite } from './mocked-worker';

const suite = workflowTestSuite();
const { stops } = suite;

/** The audit trail's activity, keeping what it is handed. */
function capturingAudit() {
  const events: AuditEventInput[] = [];
  const recordAuditEvent = async (event: AuditEventInput): Promise<RecordAuditEventResult> => {
    events.push(event);
    return { eventId: event.eventId, recorded: true, alreadyRecorded: false, receipt: realReceipt('AUDIT_EVENT', { eventId: event.eventId }) };
  };
  return { events, activities: { recordAuditEvent } };
}

async function worker(activities: object): Promise<string> {
  const started = await mockedWorker(suite.env, activities);
  stops.push(() => started.stop());
  return started.taskQueue;
}

/** The reason an update was refused (validator or handler). */
async function refusal(update: Promise<unknown>): Promise<string> {
  try {
    await update;
  } catch (error) {
    return (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
  }
  throw new Error('the update was accepted');
}

/** A backup parked at STORE (its first STORE fails for good), with the audit trail captured. */
async function parkedBackup() {
  const audit = capturingAudit();
  const { activities, calls } = backupActivities({ failStore: 1 });
  const taskQueue = await worker({ ...activities, ...audit.activities });
  const userId = uniqueId('signed-backup');
  const workflowId = backupWorkflowId(userId);
  const handle = await suite.env.client.workflow.start('backupWallet', { taskQueue, workflowId, args: [{ userId }] });
  await until('the backup to park', async () => ((await handle.query(progressQuery)).status === 'NEEDS_ATTENTION' ? true : undefined));
  const act = (kind: 'backup-retry' | 'backup-abandon', operator: string, extra: { reason?: string; signedBy?: string } = {}) =>
    mockSigned({ kind, workflowId, runId: handle.firstExecutionRunId, userId, operator, ...(extra.reason ? { reason: extra.reason } : {}) }, extra.signedBy);
  return { handle, userId, audit, calls, act };
}

describe('a backup parked as NEEDS_ATTENTION takes only signed operator decisions', () => {
  it('refuses an unsigned retry (saying how to sign) and one whose signature is not the named operator’s; a signed retry resumes it and the audit names the verified operator', async () => {
    const { handle, audit, calls, act } = await parkedBackup();
    // An old client's retry: a claimed name, no statement.
    expect(await refusal(handle.executeUpdate(retryUpdate, { args: [{ requestedBy: 'ops-alice' }] }))).toMatch(/this act is signed now: sign it with `backup retry\|abandon` \(OPERATOR_NAME/);
    // A codec-key holder claims ops-alice's name but cannot sign with her key.
    expect(await refusal(handle.executeUpdate(retryUpdate, { args: [{ action: act('backup-retry', 'ops-alice', { signedBy: 'ops-mallory' }) }] }))).toMatch(/not ops-alice's/);
    // A statement of another act is refused by the validator, before any worker check.
    expect(await refusal(handle.executeUpdate(retryUpdate, { args: [{ action: act('backup-abandon', 'ops-mallory', { reason: 'x' }) }] }))).toMatch(/backup-abandon, not a backup-retry/);
    expect((await handle.query(progressQuery)).status).toBe('NEEDS_ATTENTION');

    const answered = await handle.executeUpdate(retryUpdate, { args: [{ requestedBy: 'someone-else', action: act('backup-retry', 'ops-mallory') }] });
    expect(answered.status).not.toBe('NEEDS_ATTENTION');
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED' });
    expect(calls).toEqual(['MPC_BACKUP', 'ENCRYPT', 'STORE', 'STORE', 'MARK']);
    const retried = audit.events.filter((event) => event.kind === 'backup.retried');
    // The verified operator, not the name the request claims.
    expect(retried).toEqual([expect.objectContaining({ actor: 'ops-mallory', details: { step: 'STORE', attempts: 1 } })]);
  });

  it('an abandon must carry its reason signed: a swapped reason is refused; the signed one ends the run, naming who abandoned it', async () => {
    const { handle, audit, act } = await parkedBackup();
    const signed = act('backup-abandon', 'ops-mallory', { reason: 'the user closed the account' });
    expect(await refusal(handle.executeUpdate(abandonUpdate, { args: [{ reason: 'something else', action: signed }] }))).toMatch(/abandon reason must be the one signed/);
    await handle.executeUpdate(abandonUpdate, { args: [{ reason: 'the user closed the account', action: signed }] });
    await expect(handle.result()).rejects.toThrow();
    const abandoned = audit.events.filter((event) => event.kind === 'backup.abandoned');
    expect(abandoned).toEqual([expect.objectContaining({ actor: 'ops-mallory', details: expect.objectContaining({ reason: 'the user closed the account (abandoned by ops-mallory)' }) })]);
  });
});

describe('a fleet run’s pause, resume and cancel are signed', () => {
  /** A batch of two users at one a minute (the second waits: there is time to steer it). */
  async function slowBatch() {
    const audit = capturingAudit();
    const taskQueue = await worker({ ...backupActivities().activities, ...audit.activities });
    const input: BatchBackupInput = { batchId: uniqueId('signed-batch'), source: { kind: 'list', userIds: [uniqueId('b0'), uniqueId('b1')] }, concurrency: 1, backupsPerMinute: 1 };
    const handle = await suite.env.client.workflow.start('batchBackup', { taskQueue, workflowId: `batch-${input.batchId}`, args: [input] });
    return { handle: handle as WorkflowHandle, audit };
  }

  it('refuses an unsigned pause and a claimed name; records each signed act under its verified operator, with a cancel’s signed reason', async () => {
    const { handle, audit } = await slowBatch();
    expect(await refusal(handle.executeUpdate(pauseBatchUpdate, { args: [undefined as never] }))).toMatch(/this act is signed now: sign it with `backup batch pause`/);
    expect(await refusal(handle.executeUpdate(pauseBatchUpdate, { args: [await signedControl(handle, 'pause', { operator: 'ops-alice', signedBy: 'ops-mallory' })] }))).toMatch(/not ops-alice's/);
    // A statement of another run (or act) is refused before any worker check.
    expect(await refusal(handle.executeUpdate(resumeBatchUpdate, { args: [await signedControl(handle, 'pause')] }))).toMatch(/fleet-pause, not a fleet-resume/);

    expect((await handle.executeUpdate(pauseBatchUpdate, { args: [await signedControl(handle, 'pause', { operator: 'ops-carol' })] })).status).toBe('PAUSED');
    expect((await handle.executeUpdate(resumeBatchUpdate, { args: [await signedControl(handle, 'resume')] })).status).toBe('RUNNING');
    const cancel = await signedControl(handle, 'cancel', { reason: 'wrong user list' });
    expect(await refusal(handle.executeUpdate(cancelBatchUpdate, { args: [{ ...cancel, reason: 'swapped' }] }))).toMatch(/cancel reason must be the one signed/);
    await handle.executeUpdate(cancelBatchUpdate, { args: [cancel] });
    await handle.result();
    const acts = audit.events.filter((event) => event.kind.startsWith('fleet.')).map((event) => [event.kind, event.actor, event.details]);
    expect(acts).toEqual([
      ['fleet.paused', 'ops-carol', { fleetRun: 'batch' }],
      ['fleet.resumed', 'ops-mallory', { fleetRun: 'batch' }],
      ['fleet.cancelled', 'ops-mallory', { fleetRun: 'batch', reason: 'wrong user list' }],
    ]);
  });
});

describe('a key rotation starts only on an approver’s signed request', () => {
  /** Rotation activities that count the key reads (none may happen before the start is verified). */
  function rotationActivities() {
    const reads: number[] = [];
    return {
      reads,
      activities: {
        readTransitKey: async () => (reads.push(1), { keyName: 'mpc-backup', latestVersion: 1, minDecryptionVersion: 1, storeKind: 'mock', custodianShares: false }),
        rotateTransitKey: async () => ({ latestVersion: 2, rotated: true }),
      },
    };
  }
  const input = (): RotateKeysInput => ({ rotationId: uniqueId('rot'), source: { kind: 'list', userIds: [] }, usersPerMinute: 600, concurrency: 1, raiseMinDecryptionVersion: true });

  async function failure(handle: { result(): Promise<unknown> }): Promise<{ type?: string; message: string }> {
    const error = await handle.result().then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(WorkflowFailedError);
    return (error as WorkflowFailedError).cause as unknown as { type?: string; message: string };
  }

  it('refuses a verified operator who is not an approver, an unsigned start, and a signed start without the raise used for one with it; nothing is read or rotated', async () => {
    const { activities, reads } = rotationActivities();
    const taskQueue = await worker(activities);
    const byNonApprover = await failure(await startRotation(suite.env, taskQueue, input(), 'ops-mallory'));
    expect(byNonApprover).toMatchObject({ type: 'RotationRequestUnverified', message: expect.stringMatching(/ops-mallory is not an approver/) });
    const unsigned = await suite.env.client.workflow.start('rotateKeys', { taskQueue, workflowId: uniqueId('rotate'), args: [input()] });
    expect(await failure(unsigned)).toMatchObject({ type: 'RotationRequestUnverified', message: expect.stringMatching(/backup keys rotate/) });
    const workflowId = uniqueId('rotate');
    const withoutRaise = mockSigned({ kind: 'rotation-start', workflowId, operator: 'ops-alice' });
    const swapped = await suite.env.client.workflow.start('rotateKeys', { taskQueue, workflowId, args: [{ ...input(), request: withoutRaise }] });
    expect(await failure(swapped)).toMatchObject({ message: expect.stringMatching(/rotation-start, not a rotation-raise-min-version/) });
    expect(reads).toEqual([]);
  });
});
