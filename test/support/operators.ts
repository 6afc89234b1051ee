import { inject } from 'vitest';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultOperatorSignatures } from '../../adapters/vault/operator-signatures';
import type { OperatorSigner } from '../../client/operator-signer';
import type { RecoveryClient } from '../../client/recovery-client';
import { API_SIGNER, type TestOperator } from './operator-names';
import { approvingRecoveriesWith, transitSigner } from '../../stack/approving-recoveries';

export { TEST_APPROVERS, TEST_OPERATORS, API_SIGNER, type TestOperator } from './operator-names';
export { awaitingApproval } from '../../stack/approving-recoveries';

/** Vault Transit signatures with one identity's own token (it may sign only with its own key). */
export function signaturesOf(identity: TestOperator | typeof API_SIGNER, vaultAddr = inject('vaultAddr')): VaultOperatorSignatures {
  return new VaultOperatorSignatures({ endpoint: vaultAddr, mount: 'transit', timeoutMs: 5_000 }, new StaticTokenAuth(inject('signingTokens')[identity]!));
}

/** A signer as the operator, with the operator's own key and token (as the CLI signs with OPERATOR_NAME and VAULT_TOKEN). */
export function operatorSigner(operator: TestOperator): OperatorSigner {
  return transitSigner(operator, { addr: inject('vaultAddr'), token: inject('signingTokens')[operator]! });
}

/** Recoveries as the test stack's operators (test/support/approving-recoveries.ts). */
export function approvingRecoveries(base: { temporal: RecoveryClient['temporal']; taskQueue: string }) {
  return approvingRecoveriesWith(operatorSigner, base);
}

/** For tests that are not about approvals: starts are approved before they return; ops-alice signs retry and abandon. */
export function approvingRecoveryClient(temporal: RecoveryClient['temporal'], taskQueue: string): RecoveryClient {
  return approvingRecoveries({ temporal, taskQueue }).approvingClient();
}
