import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { awaitingApproval, type TestOperator } from '../support/operators';
import { RecoveryClient } from '../../client/recovery-client';

const run = promisify(execFile);

/** The `backup` CLI as an operator runs it, against the real stack. */
let env: BackupTestEnv;
let cliEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  env = await createBackupTestEnv();
  await env.startWorker();
  cliEnv = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), TEMPORAL_TASK_QUEUE: env.taskQueue, PAYLOAD_CODEC_KEYS: inject('codecKeys') };
});
afterAll(() => env?.close());

const backup = (...args: string[]) => run('npx', ['tsx', 'client/cli.ts', ...args], { env: cliEnv, timeout: 120_000 });
/** The CLI as one operator: OPERATOR_NAME and that operator's own Vault token (it may sign only with their key). */
const asOperator = (operator: TestOperator, ...args: string[]) =>
  run('npx', ['tsx', 'client/cli.ts', ...args], {
    env: { ...cliEnv, OPERATOR_NAME: operator, VAULT_ADDR: inject('vaultAddr'), VAULT_TOKEN: inject('signingTokens')[operator] },
    timeout: 120_000,
  });

describe('backup CLI', () => {
  it('recovers with two approvals, each operator signing with their own Vault key; without an identity it says what to set', async () => {
    const userId = env.seedUser('cli-recover');
    await env.backups.startBackupWorkflow(userId);
    await env.backups.waitForBackup(userId);
    const anonymous = (await backup('recover', 'start', userId).catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(anonymous.code).toBe(2);
    expect(anonymous.stderr).toContain('set OPERATOR_NAME');

    await asOperator('ops-carol', 'recover', 'start', userId, '--no-fresh-backup');
    await awaitingApproval(new RecoveryClient(env.backups.temporal, env.taskQueue), userId);
    const self = (await asOperator('ops-carol', 'recover', 'approve', userId).catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(self.code).toBe(2);
    expect(self.stderr).toContain('ops-carol requested this recovery and cannot approve it');
    expect((await asOperator('ops-alice', 'recover', 'approve', userId)).stdout).toMatch(/^ {2}approvedBy:\n {4}- operator: ops-alice$/m);
    await asOperator('ops-bob', 'recover', 'approve', userId);
    const waited = await asOperator('ops-carol', 'recover', 'wait', userId);
    expect(waited.stdout).toMatch(/^status: COMPLETED$/m);
    expect(waited.stdout).toMatch(/^ {2}requestedBy: ops-carol$/m);
  });

  it('prints a readable summary by default and the exact JSON with --json', async () => {
    const userId = env.seedUser('cli');
    const started = await backup('start', userId, '--wait');
    // The user id once (it was printed twice, start's answer then the result's), the result below it.
    expect(started.stdout.match(new RegExp(`userId: ${userId}$`, 'gm'))).toHaveLength(1);
    expect(started.stdout).toMatch(/^result:\n {2}status: COMPLETED$/m);
    expect(started.stdout).toMatch(/^ {2}pairIds:\n {4}SECP256K1: \S+\n {4}ED25519: \S+$/m);
    const json = JSON.parse((await backup('--json', 'status', userId)).stdout) as { status: string; result: { pairIds: Record<string, string> } };
    expect(json.status).toBe('COMPLETED');
    expect(started.stdout).toContain(json.result.pairIds.SECP256K1);
  });

  it('batch status --watch draws progress lines until the batch ends, then prints the report', async () => {
    const users = [env.seedUser('cli-batch'), env.seedUser('cli-batch'), env.seedUser('cli-batch')];
    const started = JSON.parse((await backup('--json', 'batch', 'start', '--users', users.join(','), '--concurrency', '1', '--rate', '120')).stdout) as { batchId: string };
    const watched = await backup('batch', 'status', started.batchId, '--watch', '1');
    const lines = watched.stdout.split('\n');
    expect(lines.some((line) => /^\[[#-]{30}\] \d+% \d\/3 · completed \d, failed 0, parked 0, skipped 0 · in flight \d · [\d.]+\/min/.test(line))).toBe(true);
    expect(watched.stdout).toMatch(/^\[#{30}\] 100% 3\/3 · completed 3/m);
    expect(watched.stdout).toMatch(/^status: COMPLETED$/m);
    expect(watched.stdout).toMatch(/^finishedAt: /m);
  });

  it('exits with status 2 and the rule for a bad user id', async () => {
    const failure = (await backup('status', 'bad id').catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(failure.code).toBe(2);
    expect(failure.stderr).toMatch(/^backup: userId must start with a letter or digit/m);
  });

  // Four CLI processes in a row (each a tsx start, seconds apiece on a loaded machine): more than the default 90 s may pass.
  it('wait on a parked backup says at once where and why it parked and what to do, and exits 3; a retry needs an identity, and one signed by a verified operator resumes it', { timeout: 480_000 }, async () => {
    const userId = env.seedUser('cli-parked');
    env.simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, userId });
    await env.backups.startBackupWorkflow(userId);
    await waitUntilParked(env.backups, userId);
    const waited = (await backup('wait', userId).catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(waited.code).toBe(3);
    expect(waited.stderr).toContain(`the backup of user ${userId} is parked at MARK: `);
    expect(waited.stderr).toContain(`backup retry ${userId}`);
    const json = (await backup('--json', 'wait', userId).catch((error: unknown) => error)) as { code: number; stdout: string };
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: 'BackupParkedError' });
    // start --wait joins the running (parked) backup and says the same, rather than block with no output.
    const startWait = (await backup('start', userId, '--wait').catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(startWait.code).toBe(3);
    expect(startWait.stderr).toContain(`the backup of user ${userId} is parked at MARK: `);
    env.simulator.faults.clear();
    // Retry is signed: without an identity the CLI says what to set; ops-mallory (a verified operator, not an approver) may.
    const anonymous = (await backup('retry', userId, '--by', 'ops-alice').catch((error: unknown) => error)) as { code: number; stderr: string };
    expect(anonymous.code).toBe(2);
    expect(anonymous.stderr).toContain('set OPERATOR_NAME');
    expect((await asOperator('ops-mallory', 'retry', userId)).stdout).toMatch(/^decidedBy: ops-mallory$/m);
    expect((await backup('wait', userId)).stdout).toMatch(/^status: COMPLETED$/m);
  });

  it('status shows the step in flight: its attempt, the last attempt’s error, and how long this attempt has run or when the next starts', async () => {
    const userId = env.seedUser('cli-retrying');
    env.simulator.faults.add({ route: 'backup', kind: 'status', status: 503, userId });
    await env.backups.startBackupWorkflow(userId);
    const pending = await eventually('step 1 to be retried', async () => {
      const status = JSON.parse((await backup('--json', 'status', userId)).stdout) as { pendingActivity?: Record<string, unknown> };
      return (status.pendingActivity?.attempt as number) >= 2 ? status.pendingActivity : undefined;
    });
    expect(pending).toMatchObject({ type: 'mpcBackup', lastFailure: expect.stringMatching(/503/) });
    if (pending.state === 'STARTED') expect(pending.runningForSeconds).toBeGreaterThanOrEqual(0);
    else {
      // Between attempts; once the next attempt is due (and no worker has it yet) there is no future start to show.
      expect(pending.state).toBe('SCHEDULED');
      if (pending.nextAttemptAt !== undefined) expect(Number.isNaN(Date.parse(pending.nextAttemptAt as string))).toBe(false);
    }
    env.simulator.faults.clear();
    expect((await env.backups.waitForBackup(userId)).status).toBe('COMPLETED');
  });

  it('batch status of a batch that ended without a report names the error that ended it (exit 2)', async () => {
    const started = JSON.parse((await backup('--json', 'batch', 'start', '--source', 'http://127.0.0.1:9/users')).stdout) as { batchId: string };
    const failure = await eventually('the batch to end', async () => {
      const result = (await backup('batch', 'status', started.batchId).catch((error: unknown) => error)) as { code?: number; stderr?: string };
      return result.code === 2 ? result : undefined;
    });
    expect(failure.stderr).toContain(`batch ${started.batchId} ended FAILED without a report: BatchSourceNotAllowedError: `);
  });
});
