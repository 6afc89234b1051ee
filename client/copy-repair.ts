import { randomUUID } from 'node:crypto';
import type { BackupPairIds } from '../domain/backup-types';
import { CURVES, type Curve } from '../domain/curves';
import { parseUserId } from '../domain/user-id';
import { BackupDomainError, CiphertextConflictError, CiphertextNotFoundError, NoCompletedBackupError } from '../domain/errors';
import type { CiphertextStore } from '../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../adapters/credentials/credentials-source';
import type { PortalClient } from '../adapters/portal/portal-client';
import type { KmsProvider } from '../adapters/kms/kms-provider';
import { newestCompletedPairs } from '../adapters/stores/stored-backup';
import { firstVerifiedCopy } from '../adapters/stores/ciphertext-copies';
import type { AuditTrail } from '../db/audit-trail';
import { ClientError } from './client-error';
import { pacer } from './pace';

/** Repair was asked of fewer than two stores, or with bad options: nothing was read or written. */
export class CopyRepairOptionsError extends ClientError {
  override readonly name = 'CopyRepairOptionsError';
  readonly kind = 'invalid';
}

export interface CopyRepairDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  /** Every store that keeps a copy, in CIPHERTEXT_STORES order. */
  stores: readonly CiphertextStore[];
  /** The caller's own KMS credentials: the source copy is decrypt-verified before it is copied. */
  transit: Pick<KmsProvider, 'decryptEach'>;
  auditTrail: Pick<AuditTrail, 'append'>;
  /** Who repairs (the caller's KMS identity), recorded as the audit event's actor. */
  actor: string;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** One pair's copy re-created in one store. */
export interface RepairedCopy {
  store: string;
  curve: Curve;
  pairId: string;
}

/**
 * One user's repair. `repaired`: copies re-created (and audited); `complete`: every copy was there;
 * `skipped`: no completed backup at Portal; `failed`: no copy verifies, or a copy diverges (never
 * overwritten), or a store refused: `reason` says which.
 */
export type CopyRepairRow =
  | { userId: string; outcome: 'repaired'; source: string; repaired: RepairedCopy[] }
  | { userId: string; outcome: 'complete'; source: string }
  | { userId: string; outcome: 'skipped' | 'failed'; reason: string };

export type CopyRepairSummary = Record<CopyRepairRow['outcome'], number> & { users: number };

/**
 * `backup copies repair`: for each user, the newest completed backup's first copy that verifies
 * (decrypts to Portal's `{id, share}` of each pair) is the source; each store missing a pair's
 * copy gets the source's ciphertext, write-once (a store that holds another ciphertext is reported,
 * never overwritten), read back and compared; each user's repair is one audit event
 * (`copy.repaired`). Paced at `usersPerMinute`. Shares stay in this process and are never output.
 */
export async function repairCopies(
  deps: CopyRepairDeps,
  users: AsyncIterable<string[]>,
  options: { usersPerMinute: number },
  emit: (row: CopyRepairRow) => void | Promise<void>,
): Promise<CopyRepairSummary> {
  if (deps.stores.length < 2) throw new CopyRepairOptionsError('repair needs copies in two or more stores: set CIPHERTEXT_STORES (e.g. portal,postgres)');
  const paced = pacer(options.usersPerMinute, { ...(deps.now ? { now: deps.now } : {}), ...(deps.sleep ? { sleep: deps.sleep } : {}) });
  const summary: CopyRepairSummary = { users: 0, repaired: 0, complete: 0, skipped: 0, failed: 0 };
  for await (const page of users) {
    for (const rawId of page) {
      await paced();
      const row = await repairUser(deps, parseUserId(rawId));
      summary.users += 1;
      summary[row.outcome] += 1;
      await emit(row);
    }
  }
  return summary;
}

/** One user: transient failures (a store, Portal or the KMS down) are thrown; the run stops there and can be run again. */
export async function repairUser(deps: CopyRepairDeps, userId: string): Promise<CopyRepairRow> {
  let pairIds: BackupPairIds;
  try {
    const { clientApiKey } = await deps.credentials.load(userId);
    pairIds = newestCompletedPairs(userId, await deps.portal.getClient(clientApiKey));
  } catch (error) {
    if (error instanceof NoCompletedBackupError) return { userId, outcome: 'skipped', reason: error.message };
    throw error;
  }
  const source = await verifiedSource(deps, userId, pairIds);
  if ('reason' in source) return { userId, outcome: 'failed', reason: source.reason };
  const repaired: RepairedCopy[] = [];
  for (const store of deps.stores.filter((candidate) => candidate.kind !== source.store)) {
    for (const curve of CURVES) {
      const outcome = await repairPair(store, userId, curve, pairIds[curve], source.ciphertexts[curve]);
      if (outcome === 'diverges') return { userId, outcome: 'failed', reason: `the ${store.kind} copy of ${curve} pair ${pairIds[curve]} holds another ciphertext than the verified ${source.store} copy: not overwritten (see docs/storage.md)` };
      if (outcome === 'written') repaired.push({ store: store.kind, curve, pairId: pairIds[curve] });
    }
  }
  if (repaired.length === 0) return { userId, outcome: 'complete', source: source.store };
  await audit(deps, userId, source.store, repaired);
  return { userId, outcome: 'repaired', source: source.store, repaired };
}

async function verifiedSource(deps: CopyRepairDeps, userId: string, pairIds: BackupPairIds) {
  try {
    return await firstVerifiedCopy(deps.transit, deps.stores, userId, pairIds);
  } catch (error) {
    if (!(error instanceof BackupDomainError) || error.retryable) throw error;
    return { reason: `no copy to repair from: ${error.name}: ${error.message}` };
  }
}

/** One pair in one store: `present` (the same ciphertext), `written` (written once and read back equal), or `diverges`. */
async function repairPair(store: CiphertextStore, userId: string, curve: Curve, pairId: string, ciphertext: string): Promise<'present' | 'written' | 'diverges'> {
  const held = await store.get({ userId }, pairId, curve).catch((error: unknown) => {
    if (error instanceof CiphertextNotFoundError) return undefined;
    throw error;
  });
  if (held !== undefined) return held === ciphertext ? 'present' : 'diverges';
  try {
    const { alreadyStored } = await store.put({ userId }, [{ curve, pairId, ciphertext }], { freshPairs: false });
    if (alreadyStored.includes(pairId)) return 'present';
  } catch (error) {
    if (error instanceof CiphertextConflictError) return 'diverges';
    throw error;
  }
  const readBack = await store.get({ userId }, pairId, curve);
  if (readBack !== ciphertext) throw new CopyRepairReadBackError(`the ${store.kind} store took the copy of ${curve} pair ${pairId} but reads back another ciphertext: check the store`);
  return 'written';
}

/** A store accepted a repaired copy and then read back something else. */
export class CopyRepairReadBackError extends ClientError {
  override readonly name = 'CopyRepairReadBackError';
  readonly kind = 'failed';
}

async function audit(deps: CopyRepairDeps, userId: string, source: string, repaired: RepairedCopy[]): Promise<void> {
  await deps.auditTrail.append({
    // One repair is one call, never retried by Temporal: a fresh id per repair.
    eventId: `copy-repair/${userId}/${randomUUID()}`,
    kind: 'copy.repaired',
    actor: deps.actor,
    userId,
    subject: `copies/${userId}`,
    details: { source, repaired: repaired.map((copy) => ({ store: copy.store, curve: copy.curve, pairId: copy.pairId })) },
  });
}
