import type { Client } from '@temporalio/client';
import { defineQuery } from '@temporalio/workflow';
import { AWAITING_APPROVAL } from '../contracts/recover-wallet-api';

/** The `progress` query of a run that waits for approvals (a recovery's or an eject's), as far as this needs it. */
const approvalProgressQuery = defineQuery<{ status: string; approval?: unknown }>('progress');
const REQUESTER_CHECK_WAIT_MS = 30_000;

/**
 * A run that has just started waits at AWAITING_APPROVAL while a worker verifies its requester, and
 * refuses approvals until then ("still verifying its requester"): an approver who acts right after
 * the request waits for that check here (polled, for at most 30 s) instead of being refused. Any
 * other state is left to the update, which refuses with the run's own reason.
 */
export async function untilRequesterVerified(temporal: Client, workflowId: string): Promise<void> {
  const handle = temporal.workflow.getHandle(workflowId);
  const deadline = Date.now() + REQUESTER_CHECK_WAIT_MS;
  while (Date.now() < deadline) {
    const progress = await handle.query(approvalProgressQuery).catch(() => undefined);
    if (!progress || progress.status !== AWAITING_APPROVAL || progress.approval !== undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
