import { inject } from 'vitest';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultOperatorSignatures } from '../../adapters/vault/operator-signatures';
import { TransitOperatorSigner, type OperatorSigner } from '../../client/operator-signer';
import { RecoveryClient } from '../../client/recovery-client';
import type { RecoveryProgress } from '../../domain/recovery-types';
import { API_SIGNER, type TestOperator } from './operator-names';
import { eventually } from './backup-test-env';

export { TEST_APPROVERS, TEST_OPERATORS, API_SIGNER, type TestOperator } from './operator-names';

/** Vault Transit signatures with one identity's own token (it may sign only with its own key). */
export function signaturesOf(identity: TestOperator | typeof API_SIGNER, vaultAddr = inject('vaultAddr')): VaultOperatorSignatures {
  return new VaultOperatorSignatures({ endpoint: vaultAddr, mount: 'transit', timeoutMs: 5_000 }, new StaticTokenAuth(inject('signingTokens')[identity]!));
}

/** A signer as the operator, with the operator's own key and token (as the CLI signs with OPERATOR_NAME and VAULT_TOKEN). */
export function operatorSigner(operator: TestOperator): OperatorSigner {
  return new TransitOperatorSigner(operator, 'operator', `operator-${operator}`, signaturesOf(operator));
}

/**
 * Recoveries as the test's requester (ops-carol), and `approve(userId)`: both approvers (ops-alice,
 * ops-bob) approve once the run waits for approval. Tests that are not about approvals start and
 * approve in one go with `startApproved`.
 */
export function approvingRecoveries(base: { temporal: RecoveryClient['temporal']; taskQueue: string }) {
  const recoveries = new RecoveryClient(base.temporal, base.taskQueue, operatorSigner('ops-carol'));
  const as = (operator: TestOperator) => recoveries.as(operatorSigner(operator));
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
  return { recoveries, as, approve, startApproved };
}

/** Waits until the user's recovery waits for approvals (its requester verified, its policy known) and returns its progress. */
export function awaitingApproval(recoveries: RecoveryClient, userId: string): Promise<RecoveryProgress> {
  return eventually(`recovery of ${userId} to await approval`, async () => {
    const status = await recoveries.getRecoveryStatus(userId);
    return status.status === 'AWAITING_APPROVAL' && status.progress?.approval?.expiresAt ? status.progress : undefined;
  });
}

/**
 * For tests that are not about approvals: a RecoveryClient whose start is requested by ops-carol
 * and approved by ops-alice and ops-bob before it returns, and whose retry and abandon ops-alice signs.
 */
export function approvingRecoveryClient(temporal: RecoveryClient['temporal'], taskQueue: string): RecoveryClient {
  const { recoveries, as, startApproved } = approvingRecoveries({ temporal, taskQueue });
  const approver = as('ops-alice');
  return Object.assign(Object.create(recoveries) as RecoveryClient, {
    startRecovery: startApproved,
    retryRecovery: (userId: string) => approver.retryRecovery(userId),
    abandonRecovery: (userId: string, reason: string) => approver.abandonRecovery(userId, reason),
  });
}
