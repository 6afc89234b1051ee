import { pacer } from './pace';
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { CiphertextStore } from '../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../adapters/credentials/credentials-source';
import { ciphertextFormat, ciphertextVersion } from '../adapters/kms/kms-ciphertext';
import type { PortalClient } from '../adapters/portal/portal-client';
import { newestCompletedPairs } from '../adapters/stores/stored-backup';
import type { BackupPairIds } from '../domain/backup-types';
import { CURVES } from '../domain/curves';
import { BackupDomainError, CiphertextNotFoundError, NoCompletedBackupError } from '../domain/errors';
import { redactSecrets } from '../domain/redact';
import { parseUserId } from '../domain/user-id';
import { COVERAGE_METRICS } from '../metrics/definitions';

/**
 * `backup coverage`: for every user a source knows, whether a backup would restore the wallet —
 * the newest completed backup (when, where its ciphertexts are, under which KMS key version), and
 * the users with a problem: no completed backup, one older than the policy age, a parked backup
 * run, a restore drill that failed on the backup (a finding newer than the backup). Users come one
 * page at a time and each row is written as soon as it is made, so a run over 100,000 users holds
 * one page, the parked runs and the drill findings in memory, never the rows. Paced: at most
 * `usersPerMinute` users are looked at per minute (each costs a credentials load, a Portal read and
 * a read per curve in each store that keeps a copy).
 *
 * Copies (CIPHERTEXT_STORES names several stores): each store's copy is read and reported in
 * `copies` (present or missing, key version); a user with a copy missing from one store while
 * another holds one is COPY_MISSING (the backup still restores; `backup copies repair` recreates
 * it); with none anywhere, NO_BACKUP as with one store.
 */

export const COVERAGE_PROBLEMS = ['NO_BACKUP', 'STALE', 'PARKED', 'DRILL_FAILED', 'COPY_MISSING', 'UNCHECKED'] as const;
export type CoverageProblem = (typeof COVERAGE_PROBLEMS)[number];

export interface CoverageRow {
  userId: string;
  /** Empty when the newest completed backup is fresh, stored, not parked and not failed by a drill. */
  problems: CoverageProblem[];
  /** The newest completed backup: when Portal made its pairs, the pairs, and where its ciphertexts were read. */
  newestBackupAt?: string;
  pairIds?: BackupPairIds;
  /** The stores that hold a copy of every pair (in the configured order). */
  stores?: string[];
  /** The KMS format and lowest key version of its ciphertexts, over every copy (kms-ciphertext.ts). */
  kms?: string;
  keyVersion?: number;
  /** Each configured store's copy: present (each pair's ciphertext, with its lowest key version) or missing. */
  copies?: CoverageCopy[];
  /** The newest drill finding on this backup (made after it): the drill, the kind, when. */
  drillFinding?: { drillId: string; kind: string; at: string };
  /** Why the user could not be looked at (UNCHECKED): a transient failure, or its reason. */
  detail?: string;
}

/** One store's copy of the newest completed backup. */
export interface CoverageCopy {
  store: string;
  present: boolean;
  /** The lowest key version of its ciphertexts (present copies). */
  keyVersion?: number;
}

export interface CoverageSummary {
  users: number;
  covered: number;
  problems: Record<CoverageProblem, number>;
  /** The newest backup's key versions over the users that have one, version → users. */
  keyVersions: Record<string, number>;
  durationMs: number;
}

export interface CoverageDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  /** The primary store (the first of CIPHERTEXT_STORES). */
  store: Pick<CiphertextStore, 'kind' | 'get'>;
  /** Every store that keeps a copy, the primary first; absent (or one): the primary's copy only. */
  copies?: readonly Pick<CiphertextStore, 'kind' | 'get'>[];
  temporal: Pick<Client, 'workflowService' | 'options'>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface CoverageOptions {
  /** A completed backup older than this is STALE. */
  maxAgeMs: number;
  usersPerMinute: number;
}

/** Reads visibility (raw: only ids, times and search attributes; memos of other deployments are never decoded). */
async function listExecutions(temporalClient: CoverageDeps['temporal'], query: string, limit: number): Promise<temporal.api.workflow.v1.IWorkflowExecutionInfo[]> {
  const found: temporal.api.workflow.v1.IWorkflowExecutionInfo[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await temporalClient.workflowService.listWorkflowExecutions({
      namespace: temporalClient.options.namespace,
      query,
      pageSize: 1_000,
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    found.push(...(page.executions ?? []));
    nextPageToken = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
  } while (nextPageToken && found.length < limit);
  return found;
}

function keyword(info: temporal.api.workflow.v1.IWorkflowExecutionInfo, name: string): string | undefined {
  const payload = info.searchAttributes?.indexedFields?.[name];
  if (!payload?.data) return undefined;
  try {
    const value = JSON.parse(Buffer.from(payload.data).toString('utf8')) as unknown;
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

function startMs(info: temporal.api.workflow.v1.IWorkflowExecutionInfo): number {
  const time = info.startTime;
  return time ? Number(time.seconds ?? 0) * 1000 + Math.floor((time.nanos ?? 0) / 1e6) : 0;
}

/** The service-wide facts coverage joins each user with, read once per report. */
export interface CoverageIndex {
  parked: Set<string>;
  /** userId → the newest drill finding. */
  findings: Map<string, { drillId: string; kind: string; atMs: number }>;
}

/** Parked backup runs and drill findings (at most `limit` of each: their count, not the users', bounds memory). */
export async function readCoverageIndex(deps: Pick<CoverageDeps, 'temporal'>, limit = 100_000): Promise<CoverageIndex> {
  const parked = new Set<string>();
  for (const info of await listExecutions(deps.temporal, "WorkflowType = 'backupWallet' AND ExecutionStatus = 'Running' AND BackupStatus = 'NEEDS_ATTENTION'", limit)) {
    const workflowId = info.execution?.workflowId ?? '';
    if (workflowId.startsWith('backup-')) parked.add(workflowId.slice('backup-'.length));
  }
  const findings = new Map<string, { drillId: string; kind: string; atMs: number }>();
  for (const info of await listExecutions(deps.temporal, "BackupStatus = 'DRILL_FAILED'", limit)) {
    const drillId = keyword(info, 'DrillId');
    const workflowId = info.execution?.workflowId ?? '';
    const prefix = `${drillId}-finding-`;
    if (!drillId || !workflowId.startsWith(prefix)) continue;
    const userId = workflowId.slice(prefix.length);
    const atMs = startMs(info);
    if ((findings.get(userId)?.atMs ?? -1) < atMs) findings.set(userId, { drillId, kind: keyword(info, 'BackupStep') ?? 'UNKNOWN', atMs });
  }
  return { parked, findings };
}

/** One user's row. Transient failures (Portal, the store or the credentials source down) make it UNCHECKED with the reason. */
export async function coverageOf(deps: CoverageDeps, index: CoverageIndex, options: Pick<CoverageOptions, 'maxAgeMs'>, userId: string): Promise<CoverageRow> {
  const now = (deps.now ?? Date.now)();
  const problems: CoverageProblem[] = [];
  if (index.parked.has(userId)) problems.push('PARKED');
  const row: CoverageRow = { userId, problems };
  let pairIds: BackupPairIds;
  let createdAt: string | undefined;
  try {
    const { clientApiKey } = await deps.credentials.load(userId);
    const client = await deps.portal.getClient(clientApiKey);
    pairIds = newestCompletedPairs(userId, client);
    // The backup is as old as its older pair.
    const created = CURVES.map((curve) => client.wallets.flatMap((w) => w.backupSharePairs).find((p) => p.id === pairIds[curve])?.createdAt)
      .map((at) => (at ? Date.parse(at) : Number.NaN))
      .filter((ms) => !Number.isNaN(ms));
    createdAt = created.length > 0 ? new Date(Math.min(...created)).toISOString() : undefined;
  } catch (error) {
    if (error instanceof NoCompletedBackupError) {
      problems.unshift('NO_BACKUP');
      return row;
    }
    problems.push('UNCHECKED');
    row.detail = redactSecrets(error instanceof BackupDomainError ? `${error.name}: ${error.message}` : String(error)).slice(0, 300);
    return row;
  }
  row.pairIds = pairIds;
  if (createdAt) row.newestBackupAt = createdAt;
  const stores = deps.copies && deps.copies.length > 1 ? deps.copies : [deps.store];
  let reads: { store: string; ciphertexts?: string[] }[];
  try {
    reads = await Promise.all(stores.map((store) => readCopy(store, userId, pairIds)));
  } catch (error) {
    problems.push('UNCHECKED');
    row.detail = redactSecrets(error instanceof BackupDomainError ? `${error.name}: ${error.message}` : String(error)).slice(0, 300);
    return row;
  }
  row.copies = reads.map(({ store, ciphertexts }) => (ciphertexts ? { store, present: true, ...lowestVersion(ciphertexts) } : { store, present: false }));
  const present = reads.filter((read): read is { store: string; ciphertexts: string[] } => read.ciphertexts !== undefined);
  row.stores = present.map((read) => read.store);
  if (present.length === 0) {
    // Marked at Portal, but its ciphertext is gone from every store: it would not restore.
    problems.unshift('NO_BACKUP');
    row.detail = stores.length === 1 ? `the ${deps.store.kind} store holds no ciphertext of the newest completed backup` : `the ${stores.map((store) => store.kind).join(', ')} stores hold no ciphertext of the newest completed backup`;
    return row;
  }
  const ciphertexts = present.flatMap((read) => read.ciphertexts);
  row.kms = [...new Set(ciphertexts.map((c) => ciphertextFormat(c) ?? 'unknown'))].join(',');
  const lowest = lowestVersion(ciphertexts).keyVersion;
  if (lowest !== undefined) row.keyVersion = lowest;
  if (present.length < reads.length) {
    problems.push('COPY_MISSING');
    row.detail = `no copy in the ${reads.filter((read) => !read.ciphertexts).map((read) => read.store).join(', ')} store (backup copies repair recreates it)`;
  }
  if (createdAt && now - Date.parse(createdAt) > options.maxAgeMs) problems.push('STALE');
  const finding = index.findings.get(userId);
  if (finding && (!createdAt || finding.atMs >= Date.parse(createdAt))) {
    problems.push('DRILL_FAILED');
    row.drillFinding = { drillId: finding.drillId, kind: finding.kind, at: new Date(finding.atMs).toISOString() };
  }
  return row;
}

/** One store's copy of the pairs: each curve's ciphertext, or none when the store lacks any of them (a transient failure throws). */
async function readCopy(store: Pick<CiphertextStore, 'kind' | 'get'>, userId: string, pairIds: BackupPairIds): Promise<{ store: string; ciphertexts?: string[] }> {
  try {
    return { store: store.kind, ciphertexts: await Promise.all(CURVES.map((curve) => store.get({ userId }, pairIds[curve], curve))) };
  } catch (error) {
    if (error instanceof CiphertextNotFoundError) return { store: store.kind };
    throw error;
  }
}

function lowestVersion(ciphertexts: string[]): { keyVersion?: number } {
  const versions = ciphertexts.map((c) => ciphertextVersion(c)).filter((v): v is number => v !== undefined);
  return versions.length > 0 ? { keyVersion: Math.min(...versions) } : {};
}

/**
 * Runs the report over `users` (pages of ids, read lazily), paced, writing each row to `emit` as it
 * is made, and returns the summary.
 */
export async function runCoverage(
  deps: CoverageDeps,
  users: AsyncIterable<string[]>,
  options: CoverageOptions,
  emit: (row: CoverageRow) => void | Promise<void>,
): Promise<CoverageSummary> {
  const now = deps.now ?? Date.now;
  const started = now();
  const paced = pacer(options.usersPerMinute, { now, ...(deps.sleep ? { sleep: deps.sleep } : {}) });
  const index = await readCoverageIndex(deps);
  const summary: CoverageSummary = { users: 0, covered: 0, problems: Object.fromEntries(COVERAGE_PROBLEMS.map((p) => [p, 0])) as Record<CoverageProblem, number>, keyVersions: {}, durationMs: 0 };
  for await (const page of users) {
    for (const rawId of page) {
      const userId = parseUserId(rawId);
      await paced();
      const row = await coverageOf(deps, index, options, userId);
      summary.users += 1;
      if (row.problems.length === 0) summary.covered += 1;
      for (const problem of row.problems) summary.problems[problem] += 1;
      if (row.keyVersion !== undefined) summary.keyVersions[String(row.keyVersion)] = (summary.keyVersions[String(row.keyVersion)] ?? 0) + 1;
      await emit(row);
    }
  }
  summary.durationMs = now() - started;
  return summary;
}

/** `copies` (last, so earlier columns keep their places): each store's copy, `portal:v2 postgres:missing`. */
export const COVERAGE_CSV_HEADER = 'user_id,problems,newest_backup_at,secp256k1_pair_id,ed25519_pair_id,stores,kms,key_version,drill_id,drill_finding,drill_finding_at,detail,copies';

function copiesField(copies: CoverageCopy[] | undefined): string | undefined {
  return copies?.map((copy) => `${copy.store}:${copy.present ? `v${copy.keyVersion ?? '?'}` : 'missing'}`).join(' ');
}

function csvField(value: string | number | undefined): string {
  const text = value === undefined ? '' : String(value);
  // Quoted when needed; a leading = + - @ is defused so a spreadsheet does not run it as a formula.
  const safe = /^[=+\-@]/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function coverageCsvLine(row: CoverageRow): string {
  return [
    row.userId,
    row.problems.join(' '),
    row.newestBackupAt,
    row.pairIds?.SECP256K1,
    row.pairIds?.ED25519,
    row.stores?.join(' '),
    row.kms,
    row.keyVersion,
    row.drillFinding?.drillId,
    row.drillFinding?.kind,
    row.drillFinding?.at,
    row.detail,
    copiesField(row.copies),
  ]
    .map(csvField)
    .join(',');
}

/** The Prometheus text of a report's summary, for a textfile collector (node_exporter) or a push. */
export function coverageMetricsText(summary: CoverageSummary, finishedAtMs: number): string {
  const { users, usersTotal, lastRun } = COVERAGE_METRICS;
  const lines = [
    `# HELP ${users.name} ${users.help}`,
    `# TYPE ${users.name} gauge`,
    `${users.name}{problem="covered"} ${summary.covered}`,
    ...COVERAGE_PROBLEMS.map((problem) => `${users.name}{problem="${problem}"} ${summary.problems[problem]}`),
    `# HELP ${usersTotal.name} ${usersTotal.help}`,
    `# TYPE ${usersTotal.name} gauge`,
    `${usersTotal.name} ${summary.users}`,
    `# HELP ${lastRun.name} ${lastRun.help}`,
    `# TYPE ${lastRun.name} gauge`,
    `${lastRun.name} ${Math.floor(finishedAtMs / 1000)}`,
  ];
  return `${lines.join('\n')}\n`;
}
