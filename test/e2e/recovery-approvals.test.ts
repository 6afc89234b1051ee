import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupFailedError } from '../../client/backup-client';
import type { RecoveryClient } from '../../client/recovery-client';
import { recoveryApproveUpdate, recoveryProgressQuery } from '../../contracts/recover-wallet-api';
import { BackupStatusKey } from '../../contracts/backup-wallet-api';
import { statementText, type SignedOperatorAction } from '../../domain/operator-action';
import { recoveryWorkflowId } from '../../domain/user-id';
import { createBackupTestEnv, eventually, type BackupTestEnv } from '../support/backup-test-env';
import { approvingRecoveries, awaitingApproval, signaturesOf } from '../support/operators';
import { inject } from 'vitest';

/**
 * Two-person recovery on the real stack: the run waits at APPROVAL until two distinct verified
 * approvers (ops-alice, ops-bob) approve; operator identities are Vault Transit signatures the
 * workers verify, so a client holding only the codec key cannot act under another's name.
 */
let env: BackupTestEnv;
let operators: ReturnType<typeof approvingRecoveries>;
let recoveries: RecoveryClient;
let stopWorker: () => Promise<void>;

async function backedUp(prefix: string): Promise<string> {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  await env.backups.waitForBackup(userId);
  return userId;
}

const recoverCalls = () => env.simulator.calls.recover ?? 0;
const failureOf = (userId: string) => recoveries.waitForRecovery(userId).catch((error: unknown) => error) as Promise<BackupFailedError>;

/** An approve update as a client with only the codec key sends it (any fields, any claimed name); refused, the run's reason. */
async function sendApprove(userId: string, action: SignedOperatorAction): Promise<never> {
  try {
    await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(userId)).executeUpdate(recoveryApproveUpdate, { args: [{ action }] });
  } catch (error) {
    throw new Error(`refused: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`);
  }
  throw new Error('the forged approval was accepted');
}

/** A statement of `kind` on the user's current run, claiming `operator`. */
async function statementFor(userId: string, operator: string, kind = 'recover-approve' as const) {
  const runId = (await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(userId)).describe()).runId;
  return statementText({ v: 1, kind, workflowId: recoveryWorkflowId(userId), runId, userId, operator, via: 'operator', issuedAt: new Date().toISOString(), nonce: 'forged-1' });
}

describe('recovery approvals (real Temporal, Vault, Portal simulator)', () => {
  beforeAll(async () => {
    env = await createBackupTestEnv();
    stopWorker = await env.startWorker();
    operators = approvingRecoveries({ temporal: env.backups.temporal, taskQueue: env.taskQueue });
    recoveries = operators.recoveries;
  });
  afterAll(() => env?.close());

  it('waits at AWAITING_APPROVAL until two distinct approvers approve: self-approval and a non-approver refused, a duplicate counted once', async () => {
    const userId = await backedUp('approve-flow');
    const calls = recoverCalls();
    await recoveries.startRecovery(userId, { freshBackup: false });
    const waiting = await awaitingApproval(recoveries, userId);
    expect(waiting.approval).toMatchObject({ requestedBy: 'ops-carol', required: 2, approvedBy: [] });
    expect(Date.parse(waiting.approval!.expiresAt!) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    const status = await recoveries.getRecoveryStatus(userId);
    expect(status).toMatchObject({ status: 'AWAITING_APPROVAL', step: 'APPROVAL' });
    const description = await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(userId)).describe();
    expect(description.typedSearchAttributes.get(BackupStatusKey)).toBe('AWAITING_APPROVAL');
    // Approvers find what waits for them: `recover list --status AWAITING_APPROVAL`.
    await eventually('the recovery to be listed as awaiting approval', async () =>
      (await recoveries.list({ status: 'AWAITING_APPROVAL' })).some((entry) => entry.id === userId) ? true : undefined,
    );

    // The requester (ops-carol, who would need a key of an approver's name to pass) cannot approve.
    await expect(recoveries.approveRecovery(userId)).rejects.toThrow(/ops-carol requested this recovery and cannot approve it/);
    // A verified operator who is not an approver is refused by the workers.
    await expect(operators.as('ops-mallory').approveRecovery(userId)).rejects.toThrow(/ops-mallory is not an approver/);
    // The same approver twice counts once.
    await operators.as('ops-alice').approveRecovery(userId);
    const twice = await operators.as('ops-alice').approveRecovery(userId);
    expect(twice.approval!.approvedBy.map((entry) => entry.operator)).toEqual(['ops-alice']);
    expect((await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(userId)).query(recoveryProgressQuery)).status).toBe('AWAITING_APPROVAL');
    expect(recoverCalls()).toBe(calls);

    await operators.as('ops-bob').approveRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.status).toBe('COMPLETED');
    expect(result.approval!.approvedBy.map((entry) => entry.operator)).toEqual(['ops-alice', 'ops-bob']);
    expect(result.approval!.requestedBy).toBe('ops-carol');
  });

  it('an approval claimed under another operator’s name is refused: a forged signature, another key’s signature, a statement of another run', async () => {
    const userId = await backedUp('approve-forged');
    await recoveries.startRecovery(userId, { freshBackup: false });
    await awaitingApproval(recoveries, userId);

    // A codec-key holder makes up ops-bob's approval: the signature is no Transit signature of ops-bob's key.
    const claimBob = await statementFor(userId, 'ops-bob');
    await expect(sendApprove(userId, { statement: claimBob, signature: `vault:v1:${Buffer.alloc(64, 7).toString('base64')}` })).rejects.toThrow(
      /signature is not ops-bob's/,
    );
    // ops-mallory signs a statement naming ops-bob with her own key: still not ops-bob's signature.
    const malloryForBob = await signaturesOf('ops-mallory').sign('operator-ops-mallory', claimBob);
    await expect(sendApprove(userId, { statement: claimBob, signature: malloryForBob })).rejects.toThrow(/signature is not ops-bob's/);
    // ops-mallory's token cannot sign with ops-bob's key at all (Vault's policy).
    await expect(signaturesOf('ops-mallory').sign('operator-ops-bob', claimBob)).rejects.toThrow(/403/);

    // ops-alice's real approval of another user's recovery, replayed here: refused (it names another run).
    const other = await backedUp('approve-forged-other');
    await recoveries.startRecovery(other, { freshBackup: false });
    await awaitingApproval(recoveries, other);
    const aliceElsewhere = await operators.as('ops-alice').approveRecovery(other).then(async () => {
      const history = await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(other)).fetchHistory();
      const accepted = history.events!.find((event) => event.workflowExecutionUpdateAcceptedEventAttributes);
      return accepted!.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!.input!.args!.payloads![0]!;
    });
    const replayed = (await env.backups.temporal.options.loadedDataConverter.payloadConverter.fromPayload(
      await env.backups.temporal.options.loadedDataConverter.payloadCodecs[0]!.decode([aliceElsewhere]).then((payloads) => payloads[0]!),
    )) as { action: SignedOperatorAction };
    await expect(sendApprove(userId, replayed.action)).rejects.toThrow(/names workflow recover-.*not recover-|names run/);

    const progress = await awaitingApproval(recoveries, userId);
    expect(progress.approval!.approvedBy).toEqual([]);
    // Nothing that authenticates anyone is in history: no operator's Vault token.
    const history = JSON.stringify(await env.backups.temporal.workflow.getHandle(recoveryWorkflowId(userId)).fetchHistory());
    for (const token of Object.values(inject('signingTokens'))) expect(history).not.toContain(token);
    await operators.as('ops-bob').rejectRecovery(userId, 'test over');
    await operators.as('ops-bob').rejectRecovery(other, 'test over');
  });

  it('a start without a verified requester ends at APPROVAL: no signature, or a forged one', async () => {
    const userId = await backedUp('approve-unsigned');
    const handle = await env.backups.temporal.workflow.start('recoverWallet', { taskQueue: env.taskQueue, workflowId: recoveryWorkflowId(userId), args: [{ userId, freshBackup: false }] });
    const unsigned = (await recoveries.waitForRecovery(userId, handle.firstExecutionRunId).catch((error: unknown) => error)) as BackupFailedError;
    expect(unsigned.reasonType).toBe('RecoveryRequestUnverified');
    expect(unsigned.message).toMatch(/a signed operator action .* is required/);

    const statement = statementText({ v: 1, kind: 'recover-start', workflowId: recoveryWorkflowId(userId), userId, operator: 'ops-alice', via: 'operator', issuedAt: new Date().toISOString(), nonce: 'n1' });
    const forged = await env.backups.temporal.workflow.start('recoverWallet', {
      taskQueue: env.taskQueue,
      workflowId: recoveryWorkflowId(userId),
      args: [{ userId, freshBackup: false, request: { statement, signature: await signaturesOf('ops-mallory').sign('operator-ops-mallory', statement) } }],
    });
    const failure = (await recoveries.waitForRecovery(userId, forged.firstExecutionRunId).catch((error: unknown) => error)) as BackupFailedError;
    expect(failure.reasonType).toBe('RecoveryRequestUnverified');
    expect(failure.message).toContain("signature is not ops-alice's");
  });

  it('a rejection ends the run with the approver’s reason, before anything is read or made', async () => {
    const userId = await backedUp('approve-reject');
    const calls = recoverCalls();
    await recoveries.startRecovery(userId, { freshBackup: false });
    await awaitingApproval(recoveries, userId);
    await operators.as('ops-alice').approveRecovery(userId);
    await operators.as('ops-bob').rejectRecovery(userId, 'ticket SUP-7 was not verified');
    const failure = await failureOf(userId);
    expect(failure).toBeInstanceOf(BackupFailedError);
    expect(failure.reasonType).toBe('RecoveryRejected');
    expect(failure.message).toContain('rejected by ops-bob: ticket SUP-7 was not verified');
    expect((await recoveries.getRecoveryStatus(userId)).step).toBe('APPROVAL');
    expect(recoverCalls()).toBe(calls);
    // An unsigned retry (a codec-key holder's) is refused by a new run's validator.
  });

  it('a worker restart while waiting loses no approval: a new worker takes the second and the run completes', async () => {
    const userId = await backedUp('approve-restart');
    await recoveries.startRecovery(userId, { freshBackup: false });
    await awaitingApproval(recoveries, userId);
    await operators.as('ops-alice').approveRecovery(userId);
    // The only worker stops; a new one (nothing cached: it replays the history) takes over.
    await stopWorker();
    stopWorker = await env.startWorker();
    await operators.as('ops-bob').approveRecovery(userId);
    const result = await recoveries.waitForRecovery(userId);
    expect(result.approval!.approvedBy.map((entry) => entry.operator)).toEqual(['ops-alice', 'ops-bob']);
  });
});

describe('recovery approvals expire (RECOVERY_APPROVAL_TTL_MS)', () => {
  let expiring: BackupTestEnv;
  beforeAll(async () => {
    expiring = await createBackupTestEnv({ workerEnv: { RECOVERY_APPROVAL_TTL_MS: '2000' } });
    await expiring.startWorker();
  });
  afterAll(() => expiring?.close());

  it('a request not approved in time ends the run, saying how many approvals it had and when it expired', async () => {
    const userId = expiring.seedUser('approve-expiry');
    const { recoveries: mine, as } = approvingRecoveries({ temporal: expiring.backups.temporal, taskQueue: expiring.taskQueue });
    await mine.startRecovery(userId, { freshBackup: false });
    const waiting = await awaitingApproval(mine, userId);
    const failure = (await mine.waitForRecovery(userId).catch((error: unknown) => error)) as BackupFailedError;
    expect(failure.reasonType).toBe('RecoveryApprovalExpired');
    expect(failure.message).toContain(`0 of 2 approvals by ${waiting.approval!.expiresAt}`);
    await expect(as('ops-bob').approveRecovery(userId)).rejects.toThrow(/already ended/);
  });
});
