import { Context } from '@temporalio/activity';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { KmsProvider } from '../../adapters/kms/kms-provider';
import type { PortalClient } from '../../adapters/portal/portal-client';
import { sealToRecipient } from '../../adapters/sealing/recipient-seal';
import { firstVerifiedCopy, storeCopies, type StoreCopiesDeps } from '../../adapters/stores/ciphertext-copies';
import { newestCompletedPairs } from '../../adapters/stores/stored-backup';
import { auditEventId, type AuditEventKind } from '../../contracts/audit-events';
import { ejectReleaseKid, type EjectReleaseSummary } from '../../contracts/eject-shares-api';
import type { AuditTrail } from '../../db/audit-trail';
import type { EjectReleases } from '../../db/eject-releases';
import type { BackupPairIds } from '../../domain/backup-types';
import { CURVES } from '../../domain/curves';
import { BackupDomainError, EjectNotConfiguredError } from '../../domain/errors';

/** The stores: the primary `store` and, with CIPHERTEXT_STORES, every copy (the first that verifies is released). */
export interface EjectActivityDeps extends StoreCopiesDeps {
  credentials: CredentialsSource;
  portal: Pick<PortalClient, 'getClient'>;
  /** The workers' KMS: only a worker decrypts, and only for a run its approvers approved. */
  transit: Pick<KmsProvider, 'decryptEach'>;
  /** The company database: the release and the audit; absent without DATABASE_URL (eject then refuses). */
  database?: { releases: Pick<EjectReleases, 'find' | 'put'>; auditTrail: Pick<AuditTrail, 'append'> };
  /** How long a release can be collected. */
  releaseTtlMs: number;
}

/** What the approved run passes: the verified requester and approvers, the signed reason and recipient key. */
export interface ReleaseEjectSharesInput {
  userId: string;
  requestedBy: string;
  approvedBy: string[];
  reason: string;
  recipient: string;
}

/**
 * RELEASE, one step, one job: once the approvers have approved, decrypt the user's newest
 * completed backup with the workers' KMS and seal it to the requester's one-time key (signed into
 * the request), so only the requester's key file opens it. The release is appended to the audit
 * trail first (`eject.released`, the run's own event id), then put in the database together with
 * its share_retrievals row; the plaintext exists only in this attempt's memory and the result
 * carries ids and times only. Retries are safe: a run's release is put once, and an attempt that
 * finds it answers from it. A user without a completed backup, or one whose stored backup does not
 * restore, is refused (`eject.refused`, permanent: the run fails with the reason).
 */
export async function releaseEjectShares(deps: EjectActivityDeps, input: ReleaseEjectSharesInput): Promise<EjectReleaseSummary> {
  const database = deps.database;
  if (!database) throw new EjectNotConfiguredError('these workers have no DATABASE_URL: an eject release is recorded and held in the company database; set it on the workers');
  const run = Context.current().info.workflowExecution;
  if (!run) throw new EjectNotConfiguredError('releaseEjectShares runs only as a step of an eject run');
  const { workflowId, runId } = run;
  const existing = await database.releases.find(workflowId, runId);
  if (existing) return summary(pairsOf(existing.pairIds), existing.releasedAt, existing.expiresAt, existing.store);
  const append = (kind: AuditEventKind, details: Record<string, string | string[]>): Promise<unknown> =>
    database.auditTrail.append({ eventId: auditEventId({ workflowId, runId, kind }), kind, actor: input.requestedBy, userId: input.userId, subject: `${workflowId}/${runId}`, details: { reason: input.reason, approvedBy: input.approvedBy, ...details } });
  let pairIds: BackupPairIds | undefined;
  let plaintext: Buffer | undefined;
  let copy: { store: string; skipped: string[] };
  try {
    const { clientApiKey } = await deps.credentials.load(input.userId);
    pairIds = newestCompletedPairs(input.userId, await deps.portal.getClient(clientApiKey));
    const verified = await firstVerifiedCopy(deps.transit, storeCopies(deps), input.userId, pairIds);
    copy = { store: verified.store, skipped: verified.skipped };
    plaintext = Buffer.from(JSON.stringify({ userId: input.userId, pairIds, store: verified.store, backupResponse: verified.shares }), 'utf8');
  } catch (error) {
    if (error instanceof BackupDomainError && !error.retryable) await append('eject.refused', { refusal: `${error.name}: ${error.message}`, pairIds: pairIds ? CURVES.map((curve) => pairIds![curve]) : [] });
    throw error;
  }
  try {
    const ids = CURVES.map((curve) => pairIds![curve]);
    await append('eject.released', { pairIds: ids, store: copy.store, ...(copy.skipped.length > 0 ? { skippedCopies: copy.skipped } : {}) });
    const sealed = await sealToRecipient(plaintext, input.recipient, ejectReleaseKid(workflowId, runId));
    const expiresAt = new Date(Date.now() + deps.releaseTtlMs);
    await database.releases.put({ workflowId, runId, userId: input.userId, pairIds: ids, store: copy.store, requestedBy: input.requestedBy, approvedBy: input.approvedBy, sealed, reason: input.reason, expiresAt });
    const put = await database.releases.find(workflowId, runId);
    return summary(pairIds!, put?.releasedAt ?? new Date(), put?.expiresAt ?? expiresAt, copy.store);
  } finally {
    plaintext.fill(0);
  }
}

function pairsOf(ids: string[]): BackupPairIds {
  return Object.fromEntries(CURVES.map((curve, index) => [curve, ids[index]!])) as BackupPairIds;
}

function summary(pairIds: BackupPairIds, releasedAt: Date, expiresAt: Date, store: string): EjectReleaseSummary {
  return { pairIds, store, releasedAt: releasedAt.toISOString(), expiresAt: expiresAt.toISOString() };
}
