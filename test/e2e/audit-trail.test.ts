/**
 * The audit trail on the real servers: PostgreSQL (each test a schema of its own, so tampering
 * never touches another file's chain), Vault's ed25519 `audit-chain` key for the seals, Temporal
 * and a worker process killed mid-append.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowUpdateStage } from '@temporalio/client';
import type { Pool, PoolClient } from 'pg';
import { approvingRecoveryClient, operatorSigner } from '../support/operators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultAuditSigner } from '../../adapters/vault/audit-chain-signer';
import { AuditTrailTamperedError, AuditClient } from '../../client/audit-client';
import { BatchClient } from '../../client/batch-client';
import { pauseBatchUpdate } from '../../contracts/batch-backup-api';
import type { AuditEventInput, RecordAuditEventResult } from '../../contracts/audit-events';
import { recordAuditEvent } from '../../activities/audit/record-audit-event';
import { StepReceipts } from '../../activities/step-receipts';
import { MockActivityEnvironment } from '@temporalio/testing';
import { auditRowHash, GENESIS_HASH } from '../../db/audit-chain';
import { sealAuditHead, verifyAuditTrail } from '../../db/audit-seals';
import { AUDIT_APPEND_LOCK, AuditTrail } from '../../db/audit-trail';
import { MIGRATIONS_DIR } from '../../db/migrate';
import { createDatabasePool } from '../../db/pool';
import { createWorkerMetrics } from '../../metrics/service-metrics';
import { startAuditWatch } from '../../worker/audit-watch';
import { parsePrometheusText } from '../support/prometheus-text';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';

const run = promisify(execFile);
const signer = new VaultAuditSigner({ endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'audit-chain', timeoutMs: 5_000 }, new StaticTokenAuth(inject('vaultToken')));
const pools: Pool[] = [];
const schemas: string[] = [];

/** A chain of its own: a fresh schema with the audit tables (006's SQL), first on the search path. */
async function freshChain(): Promise<{ url: string; pool: Pool; trail: AuditTrail }> {
  const schema = `audit_test_${randomBytes(4).toString('hex')}`;
  const admin = await adminPool();
  await admin.query(`CREATE SCHEMA ${schema}`);
  schemas.push(schema);
  const base = inject('databaseUrl');
  const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema},public`)}`;
  const pool = createDatabasePool(url);
  pools.push(pool);
  await pool.query(readFileSync(join(MIGRATIONS_DIR, '006_create_audit_events.sql'), 'utf8'));
  return { url, pool, trail: new AuditTrail(pool) };
}

let admin: Pool | undefined;
async function adminPool(): Promise<Pool> {
  admin ??= createDatabasePool(inject('databaseUrl'));
  return admin;
}

afterAll(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  if (admin) {
    for (const schema of schemas) await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
});

function event(n: number, overrides: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    eventId: `backup-user-${n}/run-${n}/backup.retried/update-${n}`,
    kind: 'backup.retried',
    actor: 'ops-alice',
    userId: `user-${n}`,
    subject: `backup-user-${n}/run-${n}`,
    details: { step: 'STORE', attempts: n },
    ...overrides,
  };
}

async function appendAll(trail: AuditTrail, count: number): Promise<void> {
  for (let n = 1; n <= count; n += 1) await trail.append(event(n));
}

async function verify(trail: AuditTrail) {
  return verifyAuditTrail(trail, signer, { maxUnsealedAgeMs: 3_600_000 });
}

describe('audit trail on PostgreSQL and Vault', () => {
  it('appends a hash chain; the same event id appended again (an activity retried after its commit) is a no-op', async () => {
    const { pool, trail } = await freshChain();
    // As an activity of one run: each answer carries that run's receipt for the event.
    const receipts = new StepReceipts({ activeKeyId: 'k', keys: new Map([['k', randomBytes(32)]]) });
    const activity = new MockActivityEnvironment({ workflowExecution: { workflowId: 'audit-test', runId: 'run-1' } });
    const append = (): Promise<RecordAuditEventResult> => activity.run(recordAuditEvent, { auditTrail: trail, heartbeatIntervalMs: 2_000, receipts }, event(1));
    const first = await append();
    const again = await append();
    expect(() => receipts.verify('AUDIT_EVENT', { workflowId: 'audit-test', runId: 'run-1' }, { eventId: event(1).eventId }, again.receipt)).not.toThrow();
    expect(first).toMatchObject({ recorded: true, alreadyRecorded: false, seq: 1 });
    expect(again).toMatchObject({ recorded: true, alreadyRecorded: true, seq: 1 });
    expect((await pool.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n).toBe(1);
    const [row] = await trail.chain();
    expect(row!.prevHash).toBe(GENESIS_HASH);
    expect(row!.hash).toBe(auditRowHash(row!));
  });

  it('never forks under concurrent appends: one line, seq without gaps', async () => {
    const { trail } = await freshChain();
    await Promise.all(Array.from({ length: 20 }, (_, i) => trail.append(event(i + 1))));
    const rows = await trail.chain();
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await verify(trail)).ok).toBe(true);
  });

  it('refuses details that name a secret, and writes nothing', async () => {
    const { trail } = await freshChain();
    await expect(trail.append(event(1, { details: { clientApiKey: 'k-123' } }))).rejects.toThrow(/must not carry a share, token, API key/);
    expect(await trail.chain()).toEqual([]);
  });

  it('names a row edited in SQL (the CLI exits 4 and says which)', async () => {
    const { url, pool, trail } = await freshChain();
    await appendAll(trail, 5);
    await sealAuditHead(trail, signer);
    await pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`);
    const cli = await run('npx', ['tsx', 'client/cli.ts', '--json', 'audit', 'verify'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: url, VAULT_ADDR: inject('vaultAddr'), VAULT_TOKEN: inject('vaultToken') },
      timeout: 120_000,
    }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(cli.code).toBe(4);
    expect(cli.stderr).toContain(`row 3 (${event(3).eventId}) was changed`);
    // --json: the whole verification, then the typed error.
    const errorAt = cli.stdout.lastIndexOf('\n{\n  "error"');
    expect(JSON.parse(cli.stdout.slice(errorAt))).toMatchObject({ error: 'AuditTrailTamperedError' });
    const printed = JSON.parse(cli.stdout.slice(0, errorAt)) as { ok: boolean; problems: { kind: string; seq: number }[] };
    expect(printed.ok).toBe(false);
    expect(printed.problems[0]).toMatchObject({ kind: 'changed', seq: 3 });
  });

  it('backup audit list reads the trail by user and time (no Vault needed), and says what is wrong with --since', async () => {
    const { url, trail } = await freshChain();
    await appendAll(trail, 3);
    const cli = (...args: string[]) =>
      run('npx', ['tsx', 'client/cli.ts', ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: url }, timeout: 120_000 }).catch(
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
    const listed = (await cli('--json', 'audit', 'list', '--user', 'user-2', '--since', '2020-01-01T00:00:00Z')) as { stdout: string };
    expect((JSON.parse(listed.stdout) as { seq: number; eventId: string }[]).map((e) => [e.seq, e.eventId])).toEqual([[2, event(2).eventId]]);
    const refused = (await cli('audit', 'list', '--since', 'yesterday')) as { code: number; stderr: string };
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--since: "yesterday" is not an ISO time');
  });

  it('names a row deleted in SQL', async () => {
    const { pool, trail } = await freshChain();
    await appendAll(trail, 5);
    await pool.query('DELETE FROM audit_events WHERE seq = 2');
    const result = await verify(trail);
    expect(result.problems[0]).toMatchObject({ kind: 'removed', seq: 2 });
  });

  it('names a row inserted in SQL, even hashed correctly onto the row before and renumbered into place', async () => {
    const { pool, trail } = await freshChain();
    await appendAll(trail, 5);
    const [, second] = await trail.chain();
    const forged = { eventId: 'forged/act', kind: 'backup.abandoned', actor: 'mallory', userId: 'user-9', subject: 'forged', details: '{}', at: new Date().toISOString(), prevHash: second!.hash };
    // What a DBA would do: make room after row 2, then insert.
    await pool.query('UPDATE audit_events SET seq = seq + 1000 WHERE seq > 2');
    await pool.query('UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000');
    await pool.query(
      'INSERT INTO audit_events (seq, event_id, kind, actor, user_id, subject, details, at, prev_hash, hash) VALUES (3, $1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [forged.eventId, forged.kind, forged.actor, forged.userId, forged.subject, forged.details, forged.at, forged.prevHash, auditRowHash(forged)],
    );
    const client = new AuditClient(await adminPoolFor(pool), signer, 3_600_000);
    const error = await client.verify().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AuditTrailTamperedError);
    expect((error as AuditTrailTamperedError).verification.problems[0]).toMatchObject({ kind: 'inserted', seq: 3, eventId: 'forged/act' });
    expect((error as Error).message).toContain('row 3 (forged/act) was inserted');
  });

  it('catches a DBA who rewrites a row and recomputes every hash, through the Vault seal', async () => {
    const { pool, trail } = await freshChain();
    await appendAll(trail, 5);
    expect(await sealAuditHead(trail, signer)).toBe(5);
    await pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`);
    await recomputeAllHashes(pool, trail);
    const result = await verify(trail);
    expect(result.ok).toBe(false);
    // The chain itself is consistent again: only the seal (signed by Vault, not the DBA) catches it.
    expect(result.problems.map((problem) => problem.kind)).toEqual(['rewritten']);
    expect(result.problems[0]!.message).toMatch(/rows 1 to 5 were rewritten and their hashes recomputed/);
  });

  it('catches a tail removed after a seal, and a seal the DBA forged', async () => {
    const { pool, trail } = await freshChain();
    await appendAll(trail, 5);
    await sealAuditHead(trail, signer);
    await pool.query('DELETE FROM audit_events WHERE seq >= 4');
    expect((await verify(trail)).problems[0]).toMatchObject({ kind: 'tail-removed', seq: 4 });

    const other = await freshChain();
    await appendAll(other.trail, 2);
    const [, head] = await other.trail.chain();
    await other.trail.addSeal({ seq: 2, headHash: head!.hash, signedAt: new Date().toISOString(), keyName: 'audit-chain', signature: `vault:v1:${Buffer.alloc(64, 7).toString('base64')}` });
    expect((await verify(other.trail)).problems[0]).toMatchObject({ kind: 'seal-forged', seq: 2 });
  });

  it('the periodic verification sets mpc_backup_audit_chain_ok: 1 while intact, 0 once a row is edited', async () => {
    const { pool, trail } = await freshChain();
    await appendAll(trail, 3);
    const metrics = createWorkerMetrics();
    const silent = { info() {}, warn() {}, error() {} };
    const gauge = async () => parsePrometheusText(await metrics.scrape()).samples.find((sample) => sample.name === 'mpc_backup_audit_chain_ok')?.value;
    // No sample before a verification ran (a 0 would fire the alert on workers that do not verify).
    expect(await gauge()).toBeUndefined();
    const watch = startAuditWatch({ trail, signer, sealIntervalMs: 200, verifyIntervalMs: 200, maxUnsealedAgeMs: 60_000, metrics, log: silent });
    try {
      await eventually('the chain to be sealed and verified ok', async () => ((await trail.sealedSeq()) === 3 && (await gauge()) === 1 ? true : undefined), 30_000);
      await pool.query(`UPDATE audit_events SET details = '{"step":"MARK"}' WHERE seq = 2`);
      await eventually('the gauge to drop to 0', async () => ((await gauge()) === 0 ? true : undefined), 30_000);
    } finally {
      await watch.stop();
    }
  });
});

describe('a worker killed between an act and its audit row', () => {
  let env: BackupTestEnv;
  let chain: Awaited<ReturnType<typeof freshChain>>;

  beforeAll(async () => {
    chain = await freshChain();
    env = await createBackupTestEnv({ workerEnv: { DATABASE_URL: chain.url } });
  });
  afterAll(() => env?.close());

  it('leaves neither a lost event nor a duplicate: another worker records it once', async () => {
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    // Hold the chain's append lock, so the worker's append waits mid-activity.
    const holder: PoolClient = await chain.pool.connect();
    await holder.query('SELECT pg_advisory_lock($1, hashtext(current_schema()))', [AUDIT_APPEND_LOCK]);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await holder.query('SELECT pg_advisory_unlock($1, hashtext(current_schema()))', [AUDIT_APPEND_LOCK]);
      holder.release();
    };
    try {
      const first = env.spawnWorker('audit-a');
      // Two users at one a minute: the batch cannot end while the pause is verified and recorded.
      const started = await batches.startBatch({ source: { kind: 'list', userIds: [env.seedUser('audit'), env.seedUser('audit')] }, concurrency: 1, backupsPerMinute: 1 });
      const handle = env.backups.temporal.workflow.getHandle(started.workflowId);
      const action = await operatorSigner('ops-mallory').sign({ kind: 'fleet-pause', workflowId: started.workflowId, runId: started.runId });
      const pause = await handle.startUpdate(pauseBatchUpdate, { args: [{ action }], waitForStage: WorkflowUpdateStage.ACCEPTED });
      await eventually('the worker’s append to wait for the lock', async () => {
        const waiting = await chain.pool.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
        return waiting.rows[0].n > 0 ? true : undefined;
      });
      await first.kill();
      expect(first.child.signalCode).toBe('SIGKILL');
      expect(await chain.trail.chain()).toEqual([]);

      await release();
      env.spawnWorker('audit-b');
      expect((await pause.result()).status).toBe('PAUSED');
      const rows = await chain.trail.chain();
      expect(rows.map((row) => [row.kind, row.eventId])).toEqual([['fleet.paused', `${started.workflowId}/${started.runId}/fleet.paused/${pause.updateId}`]]);
      expect(JSON.parse(rows[0]!.details)).toEqual({ fleetRun: 'batch' });
      expect((await verify(chain.trail)).ok).toBe(true);
      await batches.cancel(started.batchId, operatorSigner('ops-mallory'));
    } finally {
      await release();
    }
  });
});

describe('workflow acts on a worker with DATABASE_URL', () => {
  let env: BackupTestEnv;
  let chain: Awaited<ReturnType<typeof freshChain>>;

  beforeAll(async () => {
    chain = await freshChain();
    env = await createBackupTestEnv({ workerEnv: { DATABASE_URL: chain.url } });
    await env.startWorker();
  });
  afterAll(() => env?.close());

  it('records an operator’s retry under the verified operator (any operator may retry a backup), and a recovery’s start and end, each once, in one intact chain', async () => {
    const userId = env.seedUser('audit-acts');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, count: 1, userId });
    await env.backups.startBackupWorkflow(userId);
    await waitUntilParked(env.backups, userId);
    await env.backups.retryBackup(userId, operatorSigner('ops-mallory'));
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
    // Requested by ops-carol, approved by ops-alice and ops-bob (signed, verified on the real Vault).
    const recoveries = approvingRecoveryClient(env.backups.temporal, env.taskQueue);
    await recoveries.startRecovery(userId, { freshBackup: false });
    const recovered = await recoveries.waitForRecovery(userId);
    expect(recovered.status).toBe('COMPLETED');

    const events = await chain.trail.list({ userId });
    expect(events.map((e) => [e.kind, e.actor])).toEqual([
      ['backup.retried', 'ops-mallory'],
      ['recovery.approved', 'ops-alice'],
      ['recovery.approved', 'ops-bob'],
      ['recovery.started', 'ops-carol'],
      ['recovery.completed', 'ops-carol'],
    ]);
    expect(events[0]!.details).toEqual({ step: 'MARK', attempts: 1 });
    expect(events[0]!.subject).toMatch(new RegExp(`^backup-${userId}/`));
    expect(events[4]!.details).toMatchObject({ signingPairIds: Object.values(recovered.signingPairIds), freshBackup: null });
    expect((await verify(chain.trail)).ok).toBe(true);
    // --user and --since read it back; a time after the last event finds nothing.
    expect(await chain.trail.list({ userId, since: new Date(Date.now() + 60_000) })).toEqual([]);
  });
});

/** A second pool on the same schema, as an auditor's process would open it (the CLI's AuditClient closes it). */
async function adminPoolFor(pool: Pool): Promise<Pool> {
  const { rows } = await pool.query<{ schema: string }>('SELECT current_schema() AS schema');
  const base = inject('databaseUrl');
  return createDatabasePool(`${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${rows[0]!.schema},public`)}`);
}

/** What a DBA who knows the algorithm does after editing: every hash and link recomputed, in order. */
async function recomputeAllHashes(pool: Pool, trail: AuditTrail): Promise<void> {
  let prevHash = GENESIS_HASH;
  for (const row of await trail.chain()) {
    const hash = auditRowHash({ ...row, prevHash });
    await pool.query('UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3', [prevHash, hash, row.seq]);
    prevHash = hash;
  }
}
