import type { BackupResult } from '../domain/backup-types';
import { transitContext } from '../activities/transit-context';
import type { VaultTransit } from '../activities/vault-transit';
import type { SimClient } from '../simulator/portal-state';

/** How one user's backup ended, as the campaign saw it. */
export interface BackupOutcome {
  userId: string;
  /** COMPLETED, or the backup status it stopped in (NEEDS_ATTENTION, FAILED, …). */
  status: string;
  result?: BackupResult;
  failure?: string;
  /** The campaign revoked this user's key on purpose. */
  revokedByCampaign: boolean;
  runs: number;
  startedAt?: number;
  closedAt?: number;
}

export const INVARIANTS = [
  'backup-not-completed',
  'pair-marked-without-valid-ciphertext',
  'ciphertext-on-unmarked-pair',
  'more-than-one-run-per-user',
  'pair-marked-by-another-run',
  'orphan-not-named',
  'secret-in-history',
  'secret-in-logs',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export class ViolationLog {
  readonly counts = Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>;
  readonly details: { invariant: Invariant; userId?: string; detail: string }[] = [];

  add(invariant: Invariant, detail: string, userId?: string): void {
    this.counts[invariant] += 1;
    if (this.details.length < 50) this.details.push({ invariant, detail, ...(userId ? { userId } : {}) });
  }

  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

/**
 * Checks one user's end state against the invariants, from the simulator's state (what Portal
 * holds), Vault (does each ciphertext decrypt, in its context, to what Portal issued) and the
 * workflow's outcome. Returns the number of orphaned pairs found.
 */
export async function checkUser(
  client: SimClient,
  outcome: BackupOutcome,
  transit: VaultTransit,
  violations: ViolationLog,
): Promise<{ orphans: number }> {
  const userId = client.userId;
  const parkedByCampaign = outcome.status === 'NEEDS_ATTENTION' && outcome.revokedByCampaign;
  if (outcome.status !== 'COMPLETED' && !parkedByCampaign) {
    violations.add('backup-not-completed', `ended ${outcome.status}: ${outcome.failure ?? 'no reason recorded'}`, userId);
  }
  if (outcome.runs > 1) violations.add('more-than-one-run-per-user', `${outcome.runs} runs`, userId);

  const pairs = client.wallets.flatMap((wallet) => wallet.backupSharePairs);
  const completed = pairs.filter((pair) => pair.status === 'completed');
  const withCiphertext = completed.filter((pair) => pair.clientCipherText);
  for (const pair of completed) {
    if (!pair.clientCipherText) violations.add('pair-marked-without-valid-ciphertext', `pair ${pair.id} has no ciphertext`, userId);
  }
  if (withCiphertext.length > 0) {
    let plaintexts: Buffer[] = [];
    try {
      plaintexts = await transit.decryptBatch(
        withCiphertext.map((pair) => ({ ciphertext: pair.clientCipherText!, context: transitContext(userId, pair.id) })),
      );
    } catch (error) {
      violations.add('pair-marked-without-valid-ciphertext', `decrypt failed: ${(error as Error).message}`, userId);
    }
    plaintexts.forEach((plaintext, index) => {
      const pair = withCiphertext[index]!;
      if (plaintext.toString('utf8') !== JSON.stringify({ id: pair.id, share: pair.share })) {
        violations.add('pair-marked-without-valid-ciphertext', `pair ${pair.id} decrypts to something else`, userId);
      }
    });
  }

  for (const pair of pairs.filter((p) => p.status === 'incomplete' && p.clientCipherText)) {
    if (!parkedByCampaign) violations.add('ciphertext-on-unmarked-pair', `pair ${pair.id}`, userId);
  }

  const runPairs = new Set(outcome.result ? Object.values(outcome.result.pairIds) : []);
  for (const event of client.markEvents) {
    for (const id of event.pairIds) {
      if (!runPairs.has(id)) violations.add('pair-marked-by-another-run', `pair ${id} marked but not this run's`, userId);
    }
  }

  const orphans = pairs.filter((pair) => pair.status === 'incomplete' && !pair.clientCipherText);
  const named = new Set(outcome.result?.orphanedPairIds ?? []);
  if (outcome.result && !outcome.result.orphanScanError) {
    for (const orphan of orphans) {
      if (!named.has(orphan.id)) violations.add('orphan-not-named', `pair ${orphan.id} is not in the run's result`, userId);
    }
  }
  return { orphans: orphans.length };
}

/** Tokens in a log that look like they could be secrets, for a set-membership scan. */
export function candidateTokens(text: string): Set<string> {
  return new Set(text.match(/[A-Za-z0-9+/=_.-]{16,}/g) ?? []);
}
