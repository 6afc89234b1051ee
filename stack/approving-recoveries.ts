import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { VaultOperatorSignatures } from '../adapters/vault/operator-signatures';
import { TransitOperatorSigner, type OperatorSigner } from '../client/operator-signer';
import { RecoveryClient } from '../client/recovery-client';
import type { RecoveryProgress } from '../domain/recovery-types';

/** The dev stack's and the tests' operators: ops-alice and ops-bob approve, ops-carol requests (ops-mallory, in tests, is no approver). */
export type DevOperator = 'ops-alice' | 'ops-bob' | 'ops-carol' | 'ops-mallory';

/** Signs as `operator` with their own key (`operator-<name>`) and their own token, as the CLI does. */
export function transitSigner(operator: string, vault: { addr: string; token: string }): OperatorSigner {
  return new TransitOperatorSigner(operator, 'operator', `operator-${operator}`, new VaultOperatorSignatures({ endpoint: vault.addr, mount: 'transit', timeoutMs: 5_000 }, new StaticTokenAuth(vault.token)));
}

/**
 * Recoveries as ops-carol (the requester) and `approve(userId)`: ops-alice and ops-bob approve once
 * the run waits for approval; `startApproved` starts and approves in one go. Used by the dev stack's demo,
 * the fault campaign, the replay recorder and the tests.
 */
export function approvingRecoveriesWith(signerOf: (operator: DevOperator) => OperatorSigner, base: { temporal: RecoveryClient['temporal']; taskQueue: string }) {
  const recoveries = new RecoveryClient(base.temporal, base.taskQueue, signerOf('ops-carol'));
  const as = (operator: DevOperator) => recoveries.as(signerOf(operator));
  const approve = async (userId: string): Promise<RecoveryProgress> => {
    await awaitingApproval(recoveries, userId);
    await as('ops-alice').approveRecovery(userId);
    return as('ops-bob').approveRecovery(userId);
  };
  const startApproved: RecoveryClient['startRecovery'] = async (userId, options) => {
    const started = await recoveries.startRecovery(userId, options);
    await approve(userId);
    return started;
  };
  /** A RecoveryClient whose start is approved before it returns and whose retry and abandon ops-alice signs. */
  const approvingClient = (): RecoveryClient => {
    const approver = as('ops-alice');
    return Object.assign(Object.create(recoveries) as RecoveryClient, {
      startRecovery: startApproved,
      retryRecovery: (userId: string) => approver.retryRecovery(userId),
      abandonRecovery: (userId: string, reason: string) => approver.abandonRecovery(userId, reason),
    });
  };
  return { recoveries, as, approve, startApproved, approvingClient };
}

/** Waits until the user's recovery waits for approvals (its requester verified, its policy known) and returns its progress. */
export async function awaitingApproval(recoveries: RecoveryClient, userId: string, timeoutMs = 60_000): Promise<RecoveryProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await recoveries.getRecoveryStatus(userId).catch(() => undefined);
    if (status?.status === 'AWAITING_APPROVAL' && status.progress?.approval?.expiresAt) return status.progress;
    if (status && status.execution !== 'RUNNING') throw new Error(`the recovery of ${userId} ended (${status.execution}: ${status.failure ?? ''}) before awaiting approval`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for the recovery of ${userId} to await approval`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
