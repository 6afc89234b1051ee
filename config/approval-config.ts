import { z } from 'zod';
import { envInt, envNonEmpty, envUrl } from './env-schema';
import { isOperatorName } from '../domain/operator-action';

/**
 * Who may approve a recovery, how many must, for how long the request stands, and where the
 * operators' signing keys are (the workers verify every operator action: docs/operations.md,
 * "Operators and approvals"). RECOVERY_APPROVERS unset: no recovery can be approved (each fails
 * at its first step, saying so).
 */
export const approvalEnvSchema = z.object({
  /** Comma-separated operator names (their Transit keys are `<OPERATOR_KEY_PREFIX><name>`; API token names count as names too). */
  RECOVERY_APPROVERS: z
    .string()
    .trim()
    .refine((value) => value.split(',').every((name) => isOperatorName(name.trim())), 'must be comma-separated operator names of [a-z0-9._-] (e.g. ops-alice,ops-bob)')
    .optional(),
  /** Distinct approvers a recovery needs (default 2). */
  RECOVERY_APPROVALS: envInt(1, 20).default(2),
  /** How long a recovery waits for its approvals before it fails (default 24 h). */
  RECOVERY_APPROVAL_TTL_MS: envInt(1_000, 30 * 24 * 3_600_000).default(24 * 3_600_000),
  /** The Vault holding the operators' signing keys, when not the KMS's own (VAULT_ADDR); the workers' VAULT_* credentials verify there. */
  OPERATOR_VAULT_ADDR: envUrl.optional(),
  OPERATOR_SIGNING_MOUNT: z.string().trim().regex(/^[A-Za-z0-9_\-/]+$/, 'must be a mount path like transit').default('transit'),
  OPERATOR_KEY_PREFIX: z.string().trim().regex(/^[A-Za-z0-9_.-]*$/, 'must be a Transit key name prefix like operator-').default('operator-'),
  /** The HTTP API's signing key, which signs for its named tokens. */
  API_SIGNING_KEY: envNonEmpty.regex(/^[A-Za-z0-9_.-]+$/, 'must be a Transit key name').default('mpc-backup-api'),
});

export type ApprovalEnv = z.infer<typeof approvalEnvSchema>;

export interface SigningKeyNames {
  mount: string;
  operatorKeyPrefix: string;
  apiKey: string;
}

export interface ApprovalConfig {
  /** Undefined when RECOVERY_APPROVERS is unset. */
  approvers?: string[];
  required: number;
  ttlMs: number;
  keys: SigningKeyNames;
}

export function approvalEnvProblems(env: ApprovalEnv): string[] {
  const approvers = approversOf(env);
  if (approvers && approvers.length < env.RECOVERY_APPROVALS) {
    return [`RECOVERY_APPROVERS names ${approvers.length} operator(s) but RECOVERY_APPROVALS is ${env.RECOVERY_APPROVALS}: no recovery could ever be approved (the requester cannot approve their own)`];
  }
  return [];
}

export function toApprovalConfig(env: ApprovalEnv): ApprovalConfig {
  const approvers = approversOf(env);
  return {
    ...(approvers ? { approvers } : {}),
    required: env.RECOVERY_APPROVALS,
    ttlMs: env.RECOVERY_APPROVAL_TTL_MS,
    keys: signingKeyNames(env),
  };
}

export function signingKeyNames(env: Pick<ApprovalEnv, 'OPERATOR_SIGNING_MOUNT' | 'OPERATOR_KEY_PREFIX' | 'API_SIGNING_KEY'>): SigningKeyNames {
  return { mount: env.OPERATOR_SIGNING_MOUNT, operatorKeyPrefix: env.OPERATOR_KEY_PREFIX, apiKey: env.API_SIGNING_KEY };
}

function approversOf(env: ApprovalEnv): string[] | undefined {
  if (!env.RECOVERY_APPROVERS) return undefined;
  return [...new Set(env.RECOVERY_APPROVERS.split(',').map((name) => name.trim()))];
}
