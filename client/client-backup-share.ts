import type { BackupPairIds, BackupShares } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import { parseUserId } from '../domain/user-id';
import { BackupDomainError, KmsPermissionError, NoCompletedBackupError, VaultPermissionError } from '../domain/errors';
import { firstVerifiedCopy, storeCopies, type StoreCopiesDeps } from '../adapters/stores/ciphertext-copies';
import type { CredentialsSource } from '../adapters/credentials/credentials-source';
import type { PortalClient } from '../adapters/portal/portal-client';
import { newestCompletedPairs } from '../adapters/stores/stored-backup';
import type { CallerIdentity } from '../adapters/vault/vault-identity';
import type { KmsProvider } from '../adapters/kms/kms-provider';
import { randomUUID } from 'node:crypto';
import type { AuditTrail } from '../db/audit-trail';
import type { ShareRetrievalAudit, ShareRetrievalRecord } from '../db/share-retrieval-audit';
import { ClientError } from './client-error';

export interface ClientBackupShareDeps extends StoreCopiesDeps {
  credentials: CredentialsSource;
  portal: Pick<PortalClient, 'getClient'>;
  /** Transit with the caller's own Vault credentials: Vault's policy decides whether it may decrypt. */
  transit: Pick<KmsProvider, 'decryptEach'>;
  identity: { whoAmI(): Promise<CallerIdentity> };
  audit: Pick<ShareRetrievalAudit, 'record'>;
  /** The hash-chained audit trail (audit_events): every release and refusal is appended before the answer. */
  auditTrail: Pick<AuditTrail, 'append'>;
  log: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
}

/** The decrypted client backup shares of a user's newest completed backup, for Portal's eject libraries. */
export interface ClientBackupShareRelease {
  userId: string;
  pairIds: BackupPairIds;
  /** Exactly the `/v1/backup` response Portal returned for these pairs: `{SECP256K1: {id, share}, ED25519: {id, share}}`. */
  shares: BackupShares;
  /** The store whose copy was released: the first, in CIPHERTEXT_STORES order, that verified. */
  store: string;
  releasedTo: string;
  releasedAt: string;
}

/** The retrieval was refused and audited as such (no completed backup, Vault refused the caller, a stored backup that does not restore). */
export class ShareRetrievalRefusedError extends ClientError {
  override readonly name = 'ShareRetrievalRefusedError';
  readonly kind = 'refused';
}

/**
 * Eject retrieval: the decrypted client backup shares of the user's newest completed backup. Runs in
 * the caller's process, never in a workflow, so the shares never enter workflow history. The caller's
 * own Vault credentials decrypt (Vault's policy is the authorization), and every attempt, released
 * or refused, is recorded in the audit table before anything is returned, and logged (ids only).
 * Computing the private key from the two backup shares stays with Portal's eject libraries.
 */
export async function getClientBackupShare(deps: ClientBackupShareDeps, rawUserId: string, request: { reason: string }): Promise<ClientBackupShareRelease> {
  const userId = parseUserId(rawUserId);
  const reason = request.reason?.trim();
  if (!reason) throw new ShareRetrievalRefusedError('a reason is required for the audit record (e.g. the support ticket)');
  const caller = await deps.identity.whoAmI();
  const base: Omit<ShareRetrievalRecord, 'outcome'> = {
    userId,
    pairIds: [],
    requestedBy: caller.displayName,
    ...(caller.entityId ? { vaultEntity: caller.entityId } : {}),
    reason,
  };
  let pairIds: BackupPairIds | undefined;
  try {
    const { clientApiKey } = await deps.credentials.load(userId);
    pairIds = newestCompletedPairs(userId, await deps.portal.getClient(clientApiKey));
    const copy = await firstVerifiedCopy(deps.transit, storeCopies(deps), userId, pairIds);
    const released = { ...base, pairIds: CURVES.map((curve) => pairIds![curve]), outcome: 'released' as const };
    await deps.audit.record(released);
    await appendRetrieval(deps, 'eject.released', released, { store: copy.store, ...(copy.skipped.length > 0 ? { skippedCopies: copy.skipped } : {}) });
    deps.log.info({ userId, pairIds: released.pairIds, store: copy.store, skippedCopies: copy.skipped, requestedBy: caller.displayName, reason }, 'client backup shares released for eject');
    return { userId, pairIds, shares: copy.shares, store: copy.store, releasedTo: caller.displayName, releasedAt: new Date().toISOString() };
  } catch (error) {
    const refusal = refusalOf(error);
    if (!refusal) throw error;
    const ids = pairIds ? CURVES.map((curve) => pairIds![curve]) : [];
    const refused = { ...base, pairIds: ids, outcome: 'refused' as const, detail: refusal };
    await deps.audit.record(refused);
    await appendRetrieval(deps, 'eject.refused', refused);
    deps.log.warn({ userId, pairIds: ids, requestedBy: caller.displayName, reason, refusal }, 'client backup share retrieval refused');
    throw new ShareRetrievalRefusedError(`retrieval of the client backup shares of user ${userId} refused: ${refusal}`);
  }
}

/** The retrieval as an audit event: who, which user and pairs, why; ids and reasons only (never the shares). */
async function appendRetrieval(
  deps: ClientBackupShareDeps,
  kind: 'eject.released' | 'eject.refused',
  record: ShareRetrievalRecord,
  /** Which copy was released (the store), and the copies skipped before it. */
  copy: { store?: string; skippedCopies?: string[] } = {},
): Promise<void> {
  await deps.auditTrail.append({
    // An eject is one call of this function, never retried by Temporal: a fresh id per retrieval.
    eventId: `eject/${record.userId}/${randomUUID()}`,
    kind,
    actor: record.requestedBy,
    userId: record.userId,
    subject: `eject/${record.userId}`,
    details: {
      pairIds: record.pairIds,
      reason: record.reason,
      ...(record.vaultEntity ? { vaultEntity: record.vaultEntity } : {}),
      ...(record.detail ? { refusal: record.detail } : {}),
      ...copy,
    },
  });
}

/** The failures that are a refusal to audit (rather than an outage to try again). */
function refusalOf(error: unknown): string | undefined {
  if (error instanceof NoCompletedBackupError) return error.message;
  if (error instanceof VaultPermissionError) return `Vault refused this caller's credentials the decryption (${error.message})`;
  if (error instanceof KmsPermissionError) return `AWS KMS refused this caller's credentials the decryption (${error.message})`;
  if (error instanceof BackupDomainError && !error.retryable) return `${error.name}: ${error.message}`;
  return undefined;
}
