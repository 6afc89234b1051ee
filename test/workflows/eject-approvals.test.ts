/**
 * The eject under the two-person rule (workflows/eject-shares.ts) with mocked activities: nothing
 * is released before two distinct approvers approve, each approval is in the audit trail before
 * the release, the release gets the verified names and the signed reason and key, and a request
 * without them, a rejection or a refused release end the run with the reason. The real servers:
 * test/e2e/eject.test.ts.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { AuditEventInput } from '../../contracts/audit-events';
import { ejectApproveUpdate, ejectProgressQuery, ejectRejectUpdate } from '../../contracts/eject-shares-api';
import type { ReleaseEjectSharesInput } from '../../activities/eject/eject-activities';
import type { OperatorActionKind } from '../../domain/operator-action';
import { ejectWorkflowId } from '../../domain/user-id';
import { approvalActivities, mockedWorker, mockSigned, PAIRS, permanent, realReceipt, workflowTestSuite, uniqueId, until } from './mocked-worker';

const suite = workflowTestSuite();
const { stops } = suite;

const RECIPIENT = 'JH-lNlNzFiHYNDzxYqaiRx8dGHuGrakgm5N25Tnpdk4';

/** An eject requested by ops-carol; `calls` lists audit events and the release in the order they ran. */
async function requested(options: { refuse?: boolean; request?: { reason?: string; recipient?: string } } = {}) {
  const calls: string[] = [];
  const releases: ReleaseEjectSharesInput[] = [];
  const activities = {
    ...approvalActivities({ required: 2 }),
    recordAuditEvent: async (event: AuditEventInput) => (
      calls.push(`${event.kind} by ${event.actor}`), { eventId: event.eventId, recorded: true, alreadyRecorded: false, receipt: realReceipt('AUDIT_EVENT', { eventId: event.eventId }) }
    ),
    releaseEjectShares: async (input: ReleaseEjectSharesInput) => {
      calls.push('RELEASE');
      releases.push(input);
      if (options.refuse) throw permanent('NoCompletedBackupError');
      return { pairIds: PAIRS, releasedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() };
    },
  };
  const worker = await mockedWorker(suite.env, activities);
  stops.push(() => worker.stop());
  const userId = uniqueId('eject');
  const workflowId = ejectWorkflowId(userId);
  const signed = options.request ?? { reason: 'ticket SUP-1', recipient: RECIPIENT };
  const request = mockSigned({ kind: 'eject-request', workflowId, userId, operator: 'ops-carol', ...signed });
  const handle = await suite.env.client.workflow.start('ejectShares', { taskQueue: worker.taskQueue, workflowId, args: [{ userId, request }] });
  const act = (kind: OperatorActionKind, operator: string, reason?: string) => mockSigned({ kind, workflowId, runId: handle.firstExecutionRunId, userId, operator, ...(reason ? { reason } : {}) });
  const approve = (operator: string) => handle.executeUpdate(ejectApproveUpdate, { args: [{ action: act('eject-approve', operator) }] });
  return { handle, calls, releases, act, approve };
}

function waitingFor(handle: Awaited<ReturnType<typeof requested>>['handle']) {
  return until('the eject to await approval', async () => {
    const progress = await handle.query(ejectProgressQuery);
    return progress.status === 'AWAITING_APPROVAL' && progress.approval ? progress : undefined;
  });
}

async function failureOf(handle: Awaited<ReturnType<typeof requested>>['handle']) {
  return ((await handle.result().catch((error: unknown) => error)) as WorkflowFailedError).cause;
}

describe('an eject waiting for approval (mocked activities)', () => {
  it('releases only after two distinct approvers, each recorded first, to the signed reason and key', async () => {
    const { handle, calls, releases, approve } = await requested();
    await waitingFor(handle);
    await expect(approve('ops-carol')).rejects.toThrow();
    await approve('ops-alice');
    await approve('ops-alice');
    expect(calls).toEqual(['eject.approved by ops-alice']);
    await approve('ops-bob');
    const result = await handle.result();
    expect(calls).toEqual(['eject.approved by ops-alice', 'eject.approved by ops-bob', 'RELEASE']);
    expect(releases).toEqual([{ userId: result.userId, requestedBy: 'ops-carol', approvedBy: ['ops-alice', 'ops-bob'], reason: 'ticket SUP-1', recipient: RECIPIENT }]);
    expect(result).toMatchObject({ status: 'RELEASED', release: { pairIds: PAIRS }, approval: { requestedBy: 'ops-carol' } });
    expect(await handle.query(ejectProgressQuery)).toMatchObject({ status: 'COMPLETED', step: 'DONE' });
  });

  it('a request without a recipient key or a reason ends at once: no one is asked to approve', async () => {
    for (const request of [{ reason: 'ticket SUP-1' }, { recipient: RECIPIENT }]) {
      const { handle, calls } = await requested({ request });
      expect(await failureOf(handle)).toMatchObject({ type: 'EjectRequestUnverified', message: expect.stringMatching(request.recipient ? /needs a reason/ : /needs the recipient key/) });
      expect(calls).toEqual([]);
    }
  });

  it('a rejection ends the run with the reason; nothing is released', async () => {
    const { handle, calls, act } = await requested();
    await waitingFor(handle);
    await handle.executeUpdate(ejectRejectUpdate, { args: [{ action: act('eject-reject', 'ops-bob', 'not the account owner') }] });
    expect(await failureOf(handle)).toMatchObject({ type: 'EjectRejected', message: expect.stringContaining('rejected by ops-bob: not the account owner') });
    expect(calls).toEqual(['eject.rejected by ops-bob']);
  });

  it('a refused release fails the run with its reason and type', async () => {
    const { handle, calls, approve } = await requested({ refuse: true });
    await waitingFor(handle);
    await approve('ops-alice');
    await approve('ops-bob');
    expect(await failureOf(handle)).toMatchObject({ type: 'NoCompletedBackupError', message: expect.stringContaining('released nothing') });
    expect(calls.filter((call) => call === 'RELEASE')).toEqual(['RELEASE']);
    expect(await handle.query(ejectProgressQuery)).toMatchObject({ status: 'FAILED', step: 'RELEASE' });
  });
});
