import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { OperatorSignatures } from '../adapters/vault/operator-signatures';
import { VaultOperatorSignatures } from '../adapters/vault/operator-signatures';
import { vaultAuth } from '../adapters/vault/vault-connection';
import { approvalEnvSchema, signingKeyNames } from '../config/approval-config';
import { loadConfig } from '../config/load-config';
import { toVaultConfig, vaultEnvProblems, vaultEnvSchema } from '../config/vault-config';
import { isOperatorName, statementText, type OperatorActionKind, type OperatorActionSigner, type SignedOperatorAction } from '../domain/operator-action';
import { ClientError } from './client-error';

/** What an operator's act names; the signer adds who, how, when and a nonce. */
export interface ActionToSign {
  kind: OperatorActionKind;
  workflowId: string;
  runId?: string;
  /** The user acted on; left out for a fleet run's controls (domain/operator-action.ts, USERLESS_KINDS). */
  userId?: string;
  reason?: string;
  /** An eject request's one-time recipient key. */
  recipient?: string;
}

/** Signs operator actions as one identity (an operator with their own Vault key, or the HTTP API for one named token). */
export interface OperatorSigner {
  readonly operator: string;
  sign(action: ActionToSign): Promise<SignedOperatorAction>;
}

/** An operator action was asked for without an operator identity to sign it with; the message says what to set. */
export class OperatorIdentityRequiredError extends ClientError {
  readonly kind = 'invalid' as const;
}

/** Signs with a Vault Transit key: `operator-<name>` with the operator's own token, or the API's key for its token names. */
export class TransitOperatorSigner implements OperatorSigner {
  constructor(
    readonly operator: string,
    private readonly via: OperatorActionSigner,
    private readonly keyName: string,
    private readonly signatures: OperatorSignatures,
    private readonly now: () => number = Date.now,
  ) {
    if (!isOperatorName(operator)) throw new OperatorIdentityRequiredError(`operator name "${operator}" must be of [a-z0-9._-], up to 64 characters`);
  }

  async sign(action: ActionToSign): Promise<SignedOperatorAction> {
    const statement = statementText({
      v: 1,
      kind: action.kind,
      workflowId: action.workflowId,
      ...(action.runId !== undefined ? { runId: action.runId } : {}),
      ...(action.userId !== undefined ? { userId: action.userId } : {}),
      operator: this.operator,
      via: this.via,
      issuedAt: new Date(this.now()).toISOString(),
      ...(action.reason !== undefined ? { reason: action.reason.trim() } : {}),
      ...(action.recipient !== undefined ? { recipient: action.recipient } : {}),
      nonce: randomUUID(),
    });
    return { statement, signature: await this.signatures.sign(this.keyName, statement) };
  }
}

const operatorEnvSchema = vaultEnvSchema.extend(approvalEnvSchema.pick({ OPERATOR_SIGNING_MOUNT: true, OPERATOR_KEY_PREFIX: true }).shape).extend({
  OPERATOR_NAME: z.string().trim().refine(isOperatorName, 'must be your operator name, of [a-z0-9._-] (your Transit key is OPERATOR_KEY_PREFIX + this name)'),
});

/**
 * The CLI's signer: OPERATOR_NAME and the operator's own Vault credentials (VAULT_ADDR, VAULT_TOKEN
 * or AppRole), whose policy allows `update` on `<mount>/sign/operator-<name>` and no one else's.
 * The token stays in this process: only the signature is sent.
 */
export function operatorSignerFromEnv(env: NodeJS.ProcessEnv = process.env): OperatorSigner {
  if (!env.OPERATOR_NAME) {
    throw new OperatorIdentityRequiredError('operator actions are signed: set OPERATOR_NAME to your operator name and VAULT_ADDR / VAULT_TOKEN to your own Vault credentials (docs/restore.md, "Approvals")');
  }
  const e = loadConfig(operatorEnvSchema, env, (parsed) => vaultEnvProblems(parsed));
  const vault = toVaultConfig(e);
  const keys = signingKeyNames({ ...e, API_SIGNING_KEY: 'unused' });
  return new TransitOperatorSigner(e.OPERATOR_NAME, 'operator', `${keys.operatorKeyPrefix}${e.OPERATOR_NAME}`, new VaultOperatorSignatures({ ...vault, mount: keys.mount }, vaultAuth(vault)));
}

/** The signer an operator act needs, or the typed refusal saying how to get one (`what`: "retry a backup"). */
export function requireSigner(signer: OperatorSigner | undefined, what: string): OperatorSigner {
  if (!signer) throw new OperatorIdentityRequiredError(`to ${what} you need an operator identity: set OPERATOR_NAME and your own VAULT_TOKEN (CLI), or use a named API token`);
  return signer;
}

/** A run that has a current run id (describe), for a statement bound to that very run. */
export interface DescribableRuns {
  getHandle(workflowId: string, runId?: string): { describe(): Promise<{ runId: string }> };
}

/**
 * The current run of `workflowId` and the signer's statement of `action` on exactly that run: the
 * update is then sent to that run (a newer run would refuse a statement of another). `notFound`
 * turns "no such workflow" into the client's own error.
 */
export async function signForCurrentRun(
  runs: DescribableRuns,
  signer: OperatorSigner,
  action: Omit<ActionToSign, 'runId'>,
  notFound: (error: unknown) => unknown,
): Promise<{ runId: string; action: SignedOperatorAction }> {
  let runId: string;
  try {
    runId = (await runs.getHandle(action.workflowId).describe()).runId;
  } catch (error) {
    throw notFound(error);
  }
  return { runId, action: await signer.sign({ ...action, runId }) };
}
