import { KeysClient } from '../../client/keys-client';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApiServer } from '../../api/api-server';
import { BatchClient } from '../../client/batch-client';
import { coverageBackend, httpUserPages } from '../../client/cli-coverage';
import { createDatabasePool } from '../../db/pool';
import type { BackupPairIds } from '../../domain/backup-types';
import { RecoveryClient } from '../../client/recovery-client';
import { COVERAGE_CSV_HEADER, coverageCsvLine, coverageMetricsText, runCoverage, type CoverageDeps, type CoverageRow } from '../../client/coverage';
import { DrillClient } from '../../client/drill-client';
import { loadWorkerConfig } from '../../worker/config';
import { createActivityDeps } from '../../worker/create-worker';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

/**
 * `backup coverage` on the real stack, with a user in each state: covered, never backed up, a
 * backup older than the policy age, a parked run, a drill finding on its newest backup, a
 * ciphertext gone from the store, and one Portal will not answer for (unchecked).
 */
let env: BackupTestEnv;
let deps: CoverageDeps;

beforeAll(async () => {
  env = await createBackupTestEnv({ kms: 'aws-kms' });
  await env.startWorker();
  const activityDeps = createActivityDeps(loadWorkerConfig(env.workerEnv));
  deps = { credentials: activityDeps.credentials, portal: activityDeps.portal, store: activityDeps.store, temporal: env.backups.temporal };
});
afterAll(() => env?.close());

async function backedUp(prefix: string) {
  const userId = env.seedUser(prefix);
  await env.backups.startBackupWorkflow(userId);
  const { pairIds } = await env.backups.waitForBackup(userId);
  return { userId, pairIds };
}

/** Two pages, as a paged source hands them over. */
async function* pages(userIds: string[]): AsyncIterable<string[]> {
  yield userIds.slice(0, 3);
  yield userIds.slice(3);
}

describe('backup coverage', () => {
  it('names every user’s state: covered, no backup, stale, parked, drill failure, ciphertext gone, unchecked; JSON rows, CSV and metrics agree', async () => {
    const covered = await backedUp('cov-ok');
    const never = env.seedUser('cov-never');
    const stale = await backedUp('cov-stale');
    for (const pairId of Object.values(stale.pairIds)) env.simulator.state.findPair(env.simulator.state.user(stale.userId)!, pairId)!.createdAt = new Date(Date.now() - 40 * 86_400_000).toISOString();
    const parked = env.seedUser('cov-parked');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId: parked });
    await env.backups.startBackupWorkflow(parked);
    await waitUntilParked(env.backups, parked);
    const drillFailed = await backedUp('cov-drill');
    const drillPair = env.simulator.state.findPair(env.simulator.state.user(drillFailed.userId)!, drillFailed.pairIds.SECP256K1)!;
    drillPair.clientCipherText = `${drillPair.clientCipherText!.slice(0, -6)}${drillPair.clientCipherText!.slice(-6) === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA'}`;
    const drills = new DrillClient(env.backups.temporal, env.taskQueue);
    const drill = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds: [drillFailed.userId] }, usersPerMinute: 6_000 })).drillId);
    expect(drill.counts.failed).toBe(1);
    const gone = await backedUp('cov-gone');
    env.simulator.state.findPair(env.simulator.state.user(gone.userId)!, gone.pairIds.ED25519)!.clientCipherText = undefined;
    const unchecked = await backedUp('cov-unchecked');
    env.simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, userId: unchecked.userId });
    // Visibility lists the drill's finding and the parked run a moment after they happen.
    await eventually('the finding and the parked run in visibility', async () => {
      const listed = await env.backups.temporal.workflowService.listWorkflowExecutions({ namespace: 'default', query: "BackupStatus = 'DRILL_FAILED' OR BackupStatus = 'NEEDS_ATTENTION'", pageSize: 1000 });
      const ids = (listed.executions ?? []).map((e) => e.execution?.workflowId ?? '');
      return ids.some((id) => id.endsWith(drillFailed.userId)) && ids.includes(`backup-${parked}`) ? true : undefined;
    });

    const userIds = [covered.userId, never, stale.userId, parked, drillFailed.userId, gone.userId, unchecked.userId];
    const rows: CoverageRow[] = [];
    const summary = await runCoverage(deps, pages(userIds), { maxAgeMs: 30 * 86_400_000, usersPerMinute: 60_000 }, (row) => {
      rows.push(row);
    });
    const byUser = new Map(rows.map((row) => [row.userId, row]));
    expect(rows.map((row) => row.userId)).toEqual(userIds);

    expect(byUser.get(covered.userId)).toMatchObject({ problems: [], pairIds: covered.pairIds, stores: ['portal'], kms: 'aws-kms-e1', keyVersion: 1, copies: [{ store: 'portal', present: true, keyVersion: 1 }] });
    expect(Date.now() - Date.parse(byUser.get(covered.userId)!.newestBackupAt!)).toBeLessThan(10 * 60_000);
    expect(byUser.get(never)).toEqual({ userId: never, problems: ['NO_BACKUP'] });
    expect(byUser.get(stale.userId)).toMatchObject({ problems: ['STALE'], pairIds: stale.pairIds, keyVersion: 1 });
    expect(byUser.get(parked)).toEqual({ userId: parked, problems: ['NO_BACKUP', 'PARKED'] });
    expect(byUser.get(drillFailed.userId)).toMatchObject({ problems: ['DRILL_FAILED'], drillFinding: { drillId: drill.drillId, kind: 'CIPHERTEXT_INVALID' } });
    expect(byUser.get(gone.userId)).toMatchObject({ problems: ['NO_BACKUP'], stores: [], copies: [{ store: 'portal', present: false }], detail: expect.stringContaining('holds no ciphertext') });
    expect(byUser.get(unchecked.userId)).toMatchObject({ problems: ['UNCHECKED'], detail: expect.stringContaining('503') });

    expect(summary).toMatchObject({ users: 7, covered: 1, problems: { NO_BACKUP: 3, STALE: 1, PARKED: 1, DRILL_FAILED: 1, COPY_MISSING: 0, UNCHECKED: 1 }, keyVersions: { '1': 3 } });
    const csv = [COVERAGE_CSV_HEADER, ...rows.map(coverageCsvLine)];
    expect(csv[1]).toBe(`${covered.userId},,${byUser.get(covered.userId)!.newestBackupAt},${covered.pairIds.SECP256K1},${covered.pairIds.ED25519},portal,aws-kms-e1,1,,,,,portal:v1`);
    expect(csv.find((line) => line.startsWith(parked))).toBe(`${parked},NO_BACKUP PARKED,,,,,,,,,,,`);
    expect(coverageMetricsText(summary, Date.now())).toContain('mpc_backup_coverage_users{problem="NO_BACKUP"} 3');
    // Ids and reasons only: no share or ciphertext in any row.
    const text = JSON.stringify(rows);
    expect(text).not.toMatch(/awskms:e1:v|vault:v/);
  }, 180_000);

  it('the CLI (CSV over the backend’s paged source, a metrics file) and GET /v1/coverage (JSON Lines) say the same as the library', async () => {
    const users = [await backedUp('cov-cli-ok'), { userId: env.seedUser('cov-cli-never') }];
    const dir = mkdtempSync(join(tmpdir(), 'coverage-'));
    const { stdout } = await promisify(execFile)(
      'npx',
      ['tsx', 'client/cli.ts', 'coverage', '--source-url', `${env.simulator.url}/backend/users`, '--page-size', '2', '--format', 'csv', '--metrics-file', join(dir, 'coverage.prom')],
      { env: { ...process.env, ...env.workerEnv }, timeout: 120_000 },
    );
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe(COVERAGE_CSV_HEADER);
    // Every user this simulator knows, one row each, in the source's order.
    const known = env.simulator.state.users().map((client) => client.userId);
    expect(lines.slice(1).map((line) => line.split(',')[0])).toEqual(known);
    expect(lines.find((line) => line.startsWith(`${users[0]!.userId},`))).toMatch(new RegExp(`^${users[0]!.userId},,[^,]+,[^,]+,[^,]+,portal,aws-kms-e1,1,,,,,portal:v1$`));
    expect(lines.find((line) => line.startsWith(`${users[1]!.userId},`))).toBe(`${users[1]!.userId},NO_BACKUP,,,,,,,,,,,`);
    const metrics = readFileSync(join(dir, 'coverage.prom'), 'utf8');
    expect(metrics).toContain(`mpc_backup_coverage_users_total ${known.length}`);

    const api = await createApiServer({
      backups: env.backups,
      recoveries: new RecoveryClient(env.backups.temporal, env.taskQueue),
      batches: new BatchClient(env.backups.temporal, env.taskQueue),
      drills: new DrillClient(env.backups.temporal, env.taskQueue),
      keys: new KeysClient(env.backups.temporal, env.taskQueue),
      tokens: ['coverage-test-token-0123456789'],
      bodyLimitBytes: 64 * 1024,
      logger: pino({ level: 'silent' }),
      coverage: { run: (pagesOf, options, emit) => runCoverage(deps, pagesOf, options, emit), pages: (url, pageSize) => httpUserPages(url, pageSize) },
    });
    try {
      const answer = await api.inject({
        method: 'GET',
        url: `/v1/coverage?users=${users.map((u) => u.userId).join(',')}&format=json&maxAgeDays=30`,
        headers: { authorization: 'Bearer coverage-test-token-0123456789' },
      });
      expect(answer.statusCode).toBe(200);
      expect(answer.headers['content-type']).toContain('application/x-ndjson');
      const body = answer.body.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(body.slice(0, 2)).toMatchObject([{ userId: users[0]!.userId, problems: [], keyVersion: 1 }, { userId: users[1]!.userId, problems: ['NO_BACKUP'] }]);
      expect(body[2]).toMatchObject({ summary: { users: 2, covered: 1, problems: { NO_BACKUP: 1 } } });
      const refused = await api.inject({ method: 'GET', url: '/v1/coverage?format=xml', headers: { authorization: 'Bearer coverage-test-token-0123456789' } });
      expect(refused.statusCode).toBe(400);
    } finally {
      await api.close();
    }
  }, 180_000);

  it('copies (CIPHERTEXT_STORES=portal,postgres): each store’s copy per user; one deleted names that user and store as COPY_MISSING in JSON, CSV and the metric, via the CLI and GET /v1/coverage', async () => {
    // A stack of its own whose workers keep both copies (the suite's keep Portal's only).
    const copies = await createBackupTestEnv({ kms: 'aws-kms', workerEnv: { CIPHERTEXT_STORES: 'portal,postgres', DATABASE_URL: inject('databaseUrl') } });
    const copiesEnv = copies.workerEnv;
    const pool = createDatabasePool(inject('databaseUrl'));
    const backend = coverageBackend(copiesEnv);
    try {
      await copies.startWorker();
      const both = copies.seedUser('cov-copies-ok');
      const lost = copies.seedUser('cov-copies-lost');
      for (const userId of [both, lost]) await copies.backups.startBackupWorkflow(userId);
      const pairIds = new Map<string, BackupPairIds>();
      for (const userId of [both, lost]) pairIds.set(userId, (await copies.backups.waitForBackup(userId)).pairIds);
      const inPostgres = async (userId: string) => (await pool.query('SELECT pair_id FROM client_ciphertexts WHERE user_id = $1', [userId])).rows.length;
      expect(await inPostgres(both)).toBe(2);
      await pool.query('DELETE FROM client_ciphertexts WHERE user_id = $1 AND pair_id = $2', [lost, pairIds.get(lost)!.ED25519]);

      const rows: CoverageRow[] = [];
      const summary = await runCoverage({ ...backend.deps, temporal: copies.backups.temporal }, pages([both, lost]), { maxAgeMs: 30 * 86_400_000, usersPerMinute: 60_000 }, (row) => void rows.push(row));
      expect(rows).toEqual([
        expect.objectContaining({ userId: both, problems: [], stores: ['portal', 'postgres'], keyVersion: 1, copies: [{ store: 'portal', present: true, keyVersion: 1 }, { store: 'postgres', present: true, keyVersion: 1 }] }),
        expect.objectContaining({
          userId: lost,
          problems: ['COPY_MISSING'],
          stores: ['portal'],
          copies: [{ store: 'portal', present: true, keyVersion: 1 }, { store: 'postgres', present: false }],
          detail: expect.stringContaining('no copy in the postgres store'),
        }),
      ]);
      expect(summary).toMatchObject({ users: 2, covered: 1, problems: { COPY_MISSING: 1, NO_BACKUP: 0 } });
      expect(coverageCsvLine(rows[1]!)).toMatch(new RegExp(`^${lost},COPY_MISSING,.*,portal:v1 postgres:missing$`));
      expect(coverageMetricsText(summary, Date.now())).toContain('mpc_backup_coverage_users{problem="COPY_MISSING"} 1');

      // The CLI, with the workers' variables: the same row.
      const { stdout } = await promisify(execFile)('npx', ['tsx', 'client/cli.ts', 'coverage', '--users', `${both},${lost}`, '--format', 'csv'], { env: { ...process.env, ...copiesEnv }, timeout: 120_000 });
      expect(stdout.trim().split('\n').find((line) => line.startsWith(`${lost},`))).toMatch(/^[^,]+,COPY_MISSING,.*,portal:v1 postgres:missing$/);

      // GET /v1/coverage over the same backend.
      const api = await createApiServer({
        backups: copies.backups,
        recoveries: new RecoveryClient(copies.backups.temporal, copies.taskQueue),
        batches: new BatchClient(copies.backups.temporal, copies.taskQueue),
        drills: new DrillClient(copies.backups.temporal, copies.taskQueue),
        keys: new KeysClient(copies.backups.temporal, copies.taskQueue),
        tokens: ['coverage-test-token-0123456789'],
        bodyLimitBytes: 64 * 1024,
        logger: pino({ level: 'silent' }),
        coverage: { run: (pagesOf, options, emit) => runCoverage({ ...backend.deps, temporal: copies.backups.temporal }, pagesOf, options, emit), pages: (url, pageSize) => httpUserPages(url, pageSize) },
      });
      try {
        const answer = await api.inject({ method: 'GET', url: `/v1/coverage?users=${lost}&format=json`, headers: { authorization: 'Bearer coverage-test-token-0123456789' } });
        const [row] = answer.body.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(row).toMatchObject({ userId: lost, problems: ['COPY_MISSING'], copies: [{ store: 'portal', present: true }, { store: 'postgres', present: false }] });
      } finally {
        await api.close();
      }
    } finally {
      await backend.close();
      await pool.end();
      await copies.close();
    }
  }, 240_000);
});
