import type { OperatorSignatures } from '../../adapters/vault/operator-signatures';
import type { ApprovalConfig } from '../../config/approval-config';

export interface ApprovalDeps {
  /** Vault Transit verify with the workers' token; absent when the workers have no Vault. */
  signatures?: OperatorSignatures;
  config: ApprovalConfig;
}

/** What a recovery's approval step needs of the workers' configuration. */
export interface ApprovalPolicy {
  /** Distinct approvers needed (never the requester). */
  required: number;
  /** How long the request stands before the run fails. */
  ttlMs: number;
}
