/**
 * The recovery's approval step (workflows/recovery-approval.ts) with mocked activities: the wait at
 * AWAITING_APPROVAL, who may approve, reject, retry and abandon, expiry. Signatures are mocked
 * (mocked-worker.ts approvalActivities); the real Vault verification is test/e2e/recovery-approvals.test.ts.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { RecoveryActivities } from '../../activities/recovery/recovery-activities';
import {
  recoveryAbandonUpdate,
  recoveryApproveUpdate,
  recoveryProgressQuery,
  recoveryRejectUpdate,
  recoveryRetryUpdate,
  type SignedAbandonRequest,
  type SignedRetryRequest,
} from '../../contracts/recover-wallet-api';
import type { OperatorActionKind } from '../../domain/operator-action';
import type { RecoveryProgress } from '../../domain/recovery-types';
import { pairClaims } from '../../domain/step-receipt';
import { recoveryWorkflowId } from '../../domain/user-id';
import { approvalActivities, mockedWorker, mockSigned, PAIRS, permanent, realReceipt, shapedReceipt, workflowTestSuite, uniqueId, until } from './mocked-worker';

const suite = workflowTestSuite();
const { stops } = suite;

const SIGNING = { SECP256K1: 's1', ED25519: 's2' };

/** Recovery activities that succeed (HAND_OVER fails permanently `failHandOver` times); `calls` lists the steps run. */
function recoveryActivities(failHandOver = 0) {
  const calls: string[] = [];
  const activities: Partial<RecoveryActivities> = {
    findRecoverableBackup: async () => (calls.push('FIND_BACKUP'), { backupPairIds: PAIRS, ciphertexts: { SECP256K1: 'vault:v1:a', ED25519: 'vault:v1:b' } }),
    decryptStoredBackup: async () => (calls.push('DECRYPT'), { keyId: 's1', data: 'sealed', ...shapedReceipt('DECRYPT') }) as never,
    recoverAtPortal: async () => (calls.push('RECOVER'), { sealedSigningShares: { keyId: 's1', data: 'sealed' }, signingPairIds: SIGNING, orphanedSigningPairIds: [] }),
    handOverSigningShares: async () => {
      calls.push('HAND_OVER');
      if (failHandOver-- > 0) throw permanent('SigningShareHandoverRejectedError');
      return shapedReceipt('HAND_OVER') as never;
    },
    markSigningPairsStored: async ({ userId }) => (calls.push('MARK_SIGNING'), { receipt: realReceipt('MARK_SIGNING', pairClaims(userId, SIGNING)) }),
  };
  return { activities, calls };
}

/** A recovery requested by ops-carol on a worker with these approval settings. */
async function requested(options: { required?: number; ttlMs?: number; failHandOver?: number } = {}) {
  const { activities, calls } = recoveryActivities(options.failHandOver);
  const worker = await mockedWorker(suite.env, { ...activities, ...approvalActivities({ required: options.required ?? 2, ...(options.ttlMs ? { ttlMs: options.ttlMs } : {}) }) });
  stops.push(() => worker.stop());
  const userId = uniqueId('approval');
  const workflowId = recoveryWorkflowId(userId);
  const request = mockSigned({ kind: 'recover-start', workflowId, userId, operator: 'ops-carol' });
  const handle = await suite.env.client.workflow.start('recoverWallet', { taskQueue: worker.taskQueue, workflowId, args: [{ userId, freshBackup: false, request }] });
  const act = (kind: OperatorActionKind, operator: string, extra: { reason?: string; signedBy?: string } = {}) =>
    mockSigned({ kind, workflowId, runId: handle.firstExecutionRunId, userId, operator, ...(extra.reason ? { reason: extra.reason } : {}) }, extra.signedBy);
  return { handle, calls, act };
}

function waitingFor(handle: WorkflowHandle) {
  return until('the run to await approval', async () => {
    const progress = await handle.query(recoveryProgressQuery);
    return progress.status === 'AWAITING_APPROVAL' && progress.approval ? progress : undefined;
  });
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

describe('a recovery waiting for approval (mocked activities)', () => {
  it('needs two distinct approvers: the requester, a forged name and a non-approver are refused, a duplicate counts once', async () => {
    const { handle, calls, act } = await requested();
    const waiting = await waitingFor(handle);
    expect(waiting.approval).toMatchObject({ requestedBy: 'ops-carol', required: 2, approvedBy: [] });
    const approve = (action: ReturnType<typeof act>) => handle.executeUpdate(recoveryApproveUpdate, { args: [{ action }] });

    expect(await refusal(approve(act('recover-approve', 'ops-carol')))).toContain('ops-carol requested this recovery and cannot approve it');
    expect(await refusal(approve(act('recover-approve', 'ops-bob', { signedBy: 'ops-carol' })))).toContain("signature is not ops-bob's");
    expect(await refusal(approve(act('recover-approve', 'ops-mallory')))).toContain('ops-mallory is not an approver');
    expect(await refusal(approve(act('recover-reject', 'ops-alice', { reason: 'x' })))).toContain('it is a recover-reject, not a recover-approve');
    await approve(act('recover-approve', 'ops-alice'));
    const twice: RecoveryProgress = await approve(act('recover-approve', 'ops-alice'));
    expect(twice.approval!.approvedBy.map((entry) => entry.operator)).toEqual(['ops-alice']);
    expect(calls).toEqual([]);

    await approve(act('recover-approve', 'ops-bob'));
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED', approval: { approvedBy: [{ operator: 'ops-alice' }, { operator: 'ops-bob' }] } });
    expect(calls).toEqual(['FIND_BACKUP', 'DECRYPT', 'RECOVER', 'HAND_OVER', 'MARK_SIGNING']);
  });

  it('a rejection ends the run with the reason, before any step runs', async () => {
    const { handle, calls, act } = await requested();
    await waitingFor(handle);
    expect(await refusal(handle.executeUpdate(recoveryRejectUpdate, { args: [{ action: act('recover-reject', 'ops-bob') }] }))).toContain('a rejection needs a reason');
    await handle.executeUpdate(recoveryRejectUpdate, { args: [{ action: act('recover-reject', 'ops-bob', { reason: 'wrong user' }) }] });
    const failure = (await handle.result().catch((error: unknown) => error)) as WorkflowFailedError;
    expect(failure.cause).toMatchObject({ type: 'RecoveryRejected', message: expect.stringContaining('rejected by ops-bob: wrong user') });
    expect(await handle.query(recoveryProgressQuery)).toMatchObject({ status: 'FAILED', step: 'APPROVAL' });
    expect(calls).toEqual([]);
  });

  it('expires: the run ends when the approvals do not come in time, saying when', async () => {
    const { handle, calls } = await requested({ ttlMs: 1_000 });
    const waiting = await waitingFor(handle);
    const failure = (await handle.result().catch((error: unknown) => error)) as WorkflowFailedError;
    expect(failure.cause).toMatchObject({ type: 'RecoveryApprovalExpired', message: expect.stringContaining(`0 of 2 approvals by ${waiting.approval!.expiresAt}`) });
    expect(calls).toEqual([]);
  });

  it('a parked recovery takes only an approver’s signed retry or abandon', async () => {
    const { handle, calls, act } = await requested({ required: 0, failHandOver: 1 });
    await until('the run to park', async () => ((await handle.query(recoveryProgressQuery)).status === 'NEEDS_ATTENTION' ? true : undefined));
    expect(await refusal(handle.executeUpdate(recoveryRetryUpdate, { args: [{ requestedBy: 'ops-alice' }] }))).toContain('this act is signed now: an approver signs it');
    const retry = (operator: string): SignedRetryRequest => ({ action: act('recover-retry', operator) });
    expect(await refusal(handle.executeUpdate(recoveryRetryUpdate, { args: [retry('ops-carol')] }))).toContain('ops-carol is not an approver');
    const swapped: SignedAbandonRequest = { reason: 'other', action: act('recover-abandon', 'ops-alice', { reason: 'signed' }) };
    expect(await refusal(handle.executeUpdate(recoveryAbandonUpdate, { args: [swapped] }))).toContain('the abandon reason must be the one signed');
    const retried = await handle.executeUpdate(recoveryRetryUpdate, { args: [retry('ops-alice')] });
    expect(retried.decidedBy).toBe('ops-alice');
    expect(await handle.result()).toMatchObject({ status: 'COMPLETED' });
    expect(calls.filter((step) => step === 'HAND_OVER')).toHaveLength(2);
  });
});
