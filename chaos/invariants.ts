import { createHash } from 'node:crypto';
import type { BackupResult } from '../domain/backup-types';
import type { RecoveryResult } from '../domain/recovery-types';
import { custodianShareContext, transitContext } from '../adapters/kms/transit-context';
import type { KmsProvider } from '../adapters/kms/kms-provider';
import { ciphertextVersion } from '../adapters/kms/kms-ciphertext';
import type { WebhookCallRecord } from '../simulator/custodian-webhook';
import type { SimBackupPair, SimClient } from '../simulator/portal-state';

/**
 * One run of a user's workflow `backup-<userId>`, as Temporal recorded it. A user may have several:
 * a start that arrives after the previous run closed begins a new backup (by design), for instance
 * a start the campaign retried after a transient failure.
 */
export interface BackupRun {
  runId: string;
  /** The run's start and close times on the Temporal server's clock (ms since the epoch). */
  startedAt: number;
  /** Absent while the run is open (running or parked). */
  closedAt?: number;
  /** COMPLETED, or the backup status it stopped in (NEEDS_ATTENTION, FAILED, …). */
  status: string;
  /** The pairs this run's step 1 created (its result's or its progress query's pairIds); absent if it never said. */
  pairIds?: string[];
  result?: BackupResult;
  failure?: string;
}

/** How one user's backup ended, as the campaign saw it: its latest run, and every run of the user. */
export interface BackupOutcome {
  userId: string;
  /** The latest run's: COMPLETED, or the backup status it stopped in (NEEDS_ATTENTION, FAILED, …). */
  status: string;
  result?: BackupResult;
  failure?: string;
  /** The campaign revoked this user's key on purpose. */
  revokedByCampaign: boolean;
  /** Every run of the user's workflow id (the latest among them), in any order. */
  runs: BackupRun[];
  startedAt?: number;
  closedAt?: number;
}

export const INVARIANTS = [
  'backup-not-completed',
  'pair-marked-without-valid-ciphertext',
  'ciphertext-on-unmarked-pair',
  'overlapping-runs-per-user',
  'pair-marked-by-another-run',
  'orphan-not-named',
  'custodian-ack-not-held',
  'marked-without-custodian-share',
  'secret-in-history',
  'secret-in-logs',
  'recovery-not-completed',
  'recovered-wrong-backup',
  'recovered-signing-shares-not-kept',
  'orphan-signing-pair-not-named',
  'rotation-not-verified',
  'marked-pair-missing-copy',
  'coverage-disagrees',
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
 * Where the campaign reads a pair's client ciphertext: Portal's copy (Portal-Managed, the
 * simulator's state) or the company's table `client_ciphertexts` (Self-Managed, read after the run).
 */
export type CiphertextLookup = (pair: SimBackupPair) => string | undefined;

export const ciphertextAtPortal: CiphertextLookup = (pair) => pair.clientCipherText;

/**
 * Checks one user's end state against the invariants, from the simulator's state (what Portal
 * holds), the ciphertext store (Portal's, or the company's PostgreSQL: `ciphertextOf`), Vault
 * (does each ciphertext decrypt, in its context, to what Portal issued) and the workflow's runs.
 * Returns the number of orphaned pairs found and of the user's runs.
 *
 * Runs one after the other are not a violation (a start after a run closed is a new backup); runs
 * that overlap are (`overlapping-runs-per-user`: one running backup per user). A mark is checked
 * against the run that created the pair (by the runs' step-1 pair ids): it must have happened
 * while that run was open, since a run acts only between its start and its close; a mark after it
 * closed was another run's (`pair-marked-by-another-run`). Both compare times that one clock
 * (this host's) set in causal order, so the verdict does not depend on how fast anything ran.
 */
export async function checkUser(
  client: SimClient,
  outcome: BackupOutcome,
  transit: Pick<KmsProvider, 'decryptBatch'>,
  violations: ViolationLog,
  ciphertextOf: CiphertextLookup = ciphertextAtPortal,
): Promise<{ orphans: number; runs: number }> {
  const userId = client.userId;
  const parkedByCampaign = outcome.status === 'NEEDS_ATTENTION' && outcome.revokedByCampaign;
  if (outcome.status !== 'COMPLETED' && !parkedByCampaign) {
    violations.add('backup-not-completed', `ended ${outcome.status}: ${outcome.failure ?? 'no reason recorded'}`, userId);
  }
  const runs = [...outcome.runs].sort((a, b) => a.startedAt - b.startedAt);
  checkRuns(userId, runs, violations);

  const pairs = client.wallets.flatMap((wallet) => wallet.backupSharePairs);
  await checkMarkedPairsDecrypt(userId, pairs, transit, violations, ciphertextOf);
  for (const pair of pairs.filter((p) => p.status === 'incomplete' && ciphertextOf(p))) {
    if (!parkedByCampaign) violations.add('ciphertext-on-unmarked-pair', `pair ${pair.id}`, userId);
  }
  checkMarksByCreator(client, runs, violations);
  const orphans = pairs.filter((pair) => pair.status === 'incomplete' && !ciphertextOf(pair));
  checkOrphansNamed(userId, orphans, runs, violations);
  return { orphans: orphans.length, runs: runs.length };
}

/** Every marked pair has a ciphertext, and it decrypts (in its user-and-pair context) to exactly the `{id, share}` Portal issued. */
async function checkMarkedPairsDecrypt(
  userId: string,
  pairs: SimBackupPair[],
  transit: Pick<KmsProvider, 'decryptBatch'>,
  violations: ViolationLog,
  ciphertextOf: CiphertextLookup,
): Promise<void> {
  const completed = pairs.filter((pair) => pair.status === 'completed');
  const withCiphertext = completed.filter((pair) => ciphertextOf(pair));
  for (const pair of completed) {
    if (!ciphertextOf(pair)) violations.add('pair-marked-without-valid-ciphertext', `pair ${pair.id} has no ciphertext`, userId);
  }
  if (withCiphertext.length === 0) return;
  let plaintexts: Buffer[] = [];
  try {
    plaintexts = await transit.decryptBatch(withCiphertext.map((pair) => ({ ciphertext: ciphertextOf(pair)!, context: transitContext(userId, pair.id) })));
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

/** One store's copies (CIPHERTEXT_STORES), named. */
export interface CopyLookup {
  store: string;
  ciphertextOf: CiphertextLookup;
}

/**
 * Several stores: every marked pair has a copy in every store, and each copy decrypts (in its
 * user-and-pair context) to exactly the `{id, share}` Portal issued.
 */
export async function checkEveryCopy(client: SimClient, transit: Pick<KmsProvider, 'decryptEach'>, violations: ViolationLog, copies: CopyLookup[]): Promise<void> {
  const userId = client.userId;
  const completed = client.wallets.flatMap((wallet) => wallet.backupSharePairs).filter((pair) => pair.status === 'completed');
  const held = completed.flatMap((pair) => copies.map((copy) => ({ pair, store: copy.store, ciphertext: copy.ciphertextOf(pair) })));
  for (const missing of held.filter((copy) => copy.ciphertext === undefined)) {
    violations.add('marked-pair-missing-copy', `pair ${missing.pair.id} has no copy in the ${missing.store} store`, userId);
  }
  const present = held.filter((copy): copy is typeof copy & { ciphertext: string } => copy.ciphertext !== undefined);
  if (present.length === 0) return;
  const results = await transit.decryptEach(present.map((copy) => ({ ciphertext: copy.ciphertext, context: transitContext(userId, copy.pair.id) })));
  present.forEach((copy, index) => {
    const result = results[index]!;
    const issued = JSON.stringify({ id: copy.pair.id, share: copy.pair.share });
    if ('error' in result || result.plaintext.toString('utf8') !== issued) {
      violations.add('marked-pair-missing-copy', `pair ${copy.pair.id}: the ${copy.store} copy does not decrypt to what Portal issued`, userId);
    }
  });
}

/**
 * After a rotation raised min_decryption_version to `minVersion`: every copy (each store of
 * CIPHERTEXT_STORES, or the one store) of every marked pair is on that version or later, and the
 * copies of a pair are one ciphertext string (the rotation writes one rewrap to each copy).
 */
export function checkCopiesRotated(client: SimClient, copies: CopyLookup[], minVersion: number, violations: ViolationLog): void {
  const userId = client.userId;
  const completed = client.wallets.flatMap((wallet) => wallet.backupSharePairs).filter((pair) => pair.status === 'completed');
  for (const pair of completed) {
    const held = copies.map((copy) => ({ store: copy.store, ciphertext: copy.ciphertextOf(pair) })).filter((copy): copy is { store: string; ciphertext: string } => copy.ciphertext !== undefined);
    for (const copy of held) {
      const version = ciphertextVersion(copy.ciphertext) ?? 0;
      if (version < minVersion) violations.add('rotation-not-verified', `pair ${pair.id}: the ${copy.store} copy is on version ${version || '?'}, below min_decryption_version ${minVersion}`, userId);
    }
    if (new Set(held.map((copy) => copy.ciphertext)).size > 1) violations.add('rotation-not-verified', `pair ${pair.id}: its copies (${held.map((copy) => copy.store).join(', ')}) hold different ciphertexts`, userId);
  }
}

/** Each mark is of a pair one of the user's runs created, while that run was open. */
function checkMarksByCreator(client: SimClient, runs: BackupRun[], violations: ViolationLog): void {
  const userId = client.userId;
  const creator = new Map(runs.flatMap((run) => (run.pairIds ?? []).map((id) => [id, run] as const)));
  for (const event of client.markEvents) {
    const at = Date.parse(event.at);
    for (const id of event.pairIds) {
      const run = creator.get(id);
      if (!run) {
        violations.add('pair-marked-by-another-run', `pair ${id} marked, but no run of this user created it (by their step-1 results)`, userId);
      } else if (run.closedAt !== undefined && at > run.closedAt) {
        violations.add(
          'pair-marked-by-another-run',
          `pair ${id} marked at ${event.at}, after run ${run.runId} that created it closed (${new Date(run.closedAt).toISOString()})`,
          userId,
        );
      }
    }
  }
}

/**
 * Every orphan is named by a run's result; looked for only if every run completed and none says
 * its scan failed (a run that could not look has named what it could).
 */
function checkOrphansNamed(userId: string, orphans: SimBackupPair[], runs: BackupRun[], violations: ViolationLog): void {
  const named = new Set(runs.flatMap((run) => run.result?.orphanedPairIds ?? []));
  if (runs.length > 0 && runs.every((run) => run.result && !run.result.orphanScanError)) {
    for (const orphan of orphans) {
      if (!named.has(orphan.id)) violations.add('orphan-not-named', `pair ${orphan.id} is not in any run's result`, userId);
    }
  }
}

/**
 * One running backup per user: no run starts before another one of the same user closed (`runs`
 * sorted by start). A run before the latest that did not complete is counted as such.
 */
function checkRuns(userId: string, runs: readonly BackupRun[], violations: ViolationLog): void {
  const at = (ms: number | undefined) => (ms === undefined ? 'still open' : new Date(ms).toISOString());
  runs.forEach((earlier, index) => {
    for (const later of runs.slice(index + 1)) {
      if (earlier.closedAt === undefined || later.startedAt < earlier.closedAt) {
        violations.add(
          'overlapping-runs-per-user',
          `run ${later.runId} started ${at(later.startedAt)}, before run ${earlier.runId} (started ${at(earlier.startedAt)}) closed (${at(earlier.closedAt)})`,
          userId,
        );
      }
    }
    if (index < runs.length - 1 && earlier.status !== 'COMPLETED') {
      violations.add('backup-not-completed', `run ${earlier.runId} ended ${earlier.status}: ${earlier.failure ?? 'no reason recorded'}`, userId);
    }
  });
}

/** How one recovery ended, as the campaign saw it. */
export interface RecoveryOutcome {
  userId: string;
  status: string;
  result?: RecoveryResult;
  failure?: string;
  /** When the campaign started it (ms since the epoch): signing pairs made since then belong to it. */
  startedAt: number;
}

/**
 * Checks one recovery against the simulator's state: it completed; it restored the user's newest
 * completed backup; the new signing shares are what the backend now holds and are marked at
 * Portal; every signing pair a lost /v1/recover call made is named in the result.
 */
export function checkRecovery(client: SimClient, outcome: RecoveryOutcome, expectedBackup: BackupResult | undefined, violations: ViolationLog): void {
  const userId = client.userId;
  if (outcome.status !== 'COMPLETED' || !outcome.result) {
    violations.add('recovery-not-completed', `ended ${outcome.status}: ${outcome.failure ?? 'no reason recorded'}`, userId);
    return;
  }
  const result = outcome.result;
  if (expectedBackup && JSON.stringify(result.backupPairIds) !== JSON.stringify(expectedBackup.pairIds)) {
    violations.add('recovered-wrong-backup', `restored ${Object.values(result.backupPairIds).join(', ')}, not the newest completed backup`, userId);
  }
  const kept = JSON.parse(client.generateResponse) as Record<string, { id?: string }>;
  const signing = client.wallets.flatMap((wallet) => wallet.signingSharePairs);
  for (const [curve, id] of Object.entries(result.signingPairIds)) {
    if (kept[curve]?.id !== id) violations.add('recovered-signing-shares-not-kept', `the backend does not hold signing pair ${id} (${curve})`, userId);
    if (signing.find((pair) => pair.id === id)?.status !== 'completed') {
      violations.add('recovered-signing-shares-not-kept', `signing pair ${id} (${curve}) is not marked at Portal`, userId);
    }
  }
  // As for backups: a run that says it could not look (orphanScanError) has named what it could.
  if (result.orphanScanError) return;
  const named = new Set([...result.orphanedSigningPairIds, ...Object.values(result.signingPairIds)]);
  for (const pair of signing.filter((p) => p.status === 'incomplete' && Date.parse(p.createdAt) >= outcome.startedAt)) {
    if (!named.has(pair.id)) violations.add('orphan-signing-pair-not-named', `signing pair ${pair.id} is not in the recovery's result`, userId);
  }
}

/** A custodian share row as the webhook committed it (table custodian_shares). */
export interface HeldCustodianShare {
  backupMethod: string;
  pairId: string;
  encryptedShare: string;
  shareSha256: string;
}

const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Self-Managed: what the company holds of one user's custodian shares, against what Portal sent.
 * - `custodian-ack-not-held`: every share the webhook acknowledged (a delivery the simulator
 *   recorded as `ok`: 200 to Portal, which then keeps no copy) has its row for (client, pair), and
 *   that row decrypts (Transit, the custodian-share context) to exactly the string Portal sent;
 * - `marked-without-custodian-share`: every pair marked completed has such a row too.
 * `held` are the user's client's rows; `deliveries` the simulator's delivery records of this user.
 */
export async function checkCustodianShares(
  client: SimClient,
  deliveries: readonly WebhookCallRecord[],
  held: readonly HeldCustodianShare[],
  transit: Pick<KmsProvider, 'decryptBatch'>,
  violations: ViolationLog,
): Promise<{ acknowledged: number; held: number }> {
  const userId = client.userId;
  const pairs = new Map(client.wallets.flatMap((wallet) => wallet.backupSharePairs).map((pair) => [pair.id, pair]));
  const acknowledged = new Set(
    deliveries.filter((call) => call.call === 'backup' && call.outcome === 'ok' && call.pairId).map((call) => call.pairId!),
  );
  const marked = [...pairs.values()].filter((pair) => pair.status === 'completed' && pair.custodian.mode === 'self-managed');

  const plaintexts = await decryptHeldRows(client.clientId, held, transit);
  const problem = (pairId: string) => custodianShareProblem(pairId, pairs.get(pairId), held, plaintexts);

  for (const pairId of acknowledged) {
    const why = problem(pairId);
    if (why) violations.add('custodian-ack-not-held', `acknowledged to Portal, but ${why}`, userId);
  }
  for (const pair of marked) {
    const why = problem(pair.id);
    if (why) violations.add('marked-without-custodian-share', `marked completed, but ${why}`, userId);
  }
  return { acknowledged: acknowledged.size, held: held.length };
}

/** Decrypts every row once (one batch; one by one if the batch fails, to name the row). */
async function decryptHeldRows(
  clientId: string,
  held: readonly HeldCustodianShare[],
  transit: Pick<KmsProvider, 'decryptBatch'>,
): Promise<Map<HeldCustodianShare, string | Error>> {
  const plaintexts = new Map<HeldCustodianShare, string | Error>();
  const items = held.map((row) => ({ ciphertext: row.encryptedShare, context: custodianShareContext(clientId, row.pairId) }));
  if (items.length === 0) return plaintexts;
  try {
    (await transit.decryptBatch(items)).forEach((plain, index) => plaintexts.set(held[index]!, plain.toString('utf8')));
  } catch {
    for (const [index, row] of held.entries()) {
      try {
        const [plain] = await transit.decryptBatch([items[index]!]);
        plaintexts.set(row, plain!.toString('utf8'));
      } catch (error) {
        plaintexts.set(row, error as Error);
      }
    }
  }
  return plaintexts;
}

/** Why the company does not hold exactly what Portal sent for the pair, or undefined if it does. */
function custodianShareProblem(
  pairId: string,
  pair: SimBackupPair | undefined,
  held: readonly HeldCustodianShare[],
  plaintexts: Map<HeldCustodianShare, string | Error>,
): string | undefined {
  if (!pair) return `pair ${pairId} is not one of the client's at Portal`;
  const rows = held.filter((row) => row.pairId === pairId);
  if (rows.length === 0) return `pair ${pairId}: no row in custodian_shares`;
  for (const row of rows) {
    const plain = plaintexts.get(row);
    if (plain === undefined || plain instanceof Error) {
      return `pair ${pairId} (${row.backupMethod}): the row does not decrypt in its context${plain ? `: ${plain.name}` : ''}`;
    }
    const sent = pair.custodianShare;
    const same = sent !== undefined ? plain === sent : sha256Hex(plain) === pair.custodian.sha256;
    if (!same) return `pair ${pairId} (${row.backupMethod}): the row decrypts to something other than what Portal sent`;
    if (row.shareSha256 !== pair.custodian.sha256) return `pair ${pairId} (${row.backupMethod}): share_sha256 differs from the digest of what Portal sent`;
  }
  return undefined;
}

/** Tokens in a log that look like they could be secrets, for a set-membership scan. */
export function candidateTokens(text: string): Set<string> {
  return new Set(text.match(/[A-Za-z0-9+/=_.-]{16,}/g) ?? []);
}
