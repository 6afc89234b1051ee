/**
 * Records Temporal histories of representative backupWallet and batchBackup runs, as replay
 * fixtures for test/replay/replay-histories.test.ts (which replays them against the current
 * workflow code with Worker.runReplayHistories, proving changes keep in-flight runs replaying).
 *
 * Starts its own Temporal dev server, Vault dev server, Portal simulator and an in-process worker
 * running the workflow code of the tree this file lives in, then drives each scenario the way the
 * e2e tests do. Histories are fetched as the server stores them (payloads encrypted with the fixed
 * test-only codec key in fixtures/codec-keys.txt, created on the first run).
 *
 *   npx tsx test/replay/record-fixtures.ts [--out DIR] [--only name,name]
 *
 * RECORD_LOG_LEVEL=WARN shows the SDK's warnings (e.g. every expected workflow failure).
 * RECORD_WORKER_ENV_JSON='{"SOME_NEW_VAR":"…"}' merges extra variables into the worker's
 * environment (for configuration later code versions need), so the script runs unchanged.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { historyToJSON } from './history-json';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { BackupClient } from '../../client/backup-client';
import { BatchClient } from '../../client/batch-client';
import { DrillClient } from '../../client/drill-client';
import { KeysClient } from '../../client/keys-client';
import { approvingRecoveriesWith, awaitingApproval, transitSigner } from '../../stack/approving-recoveries';
import { operatorKeyNames, seedSigningKeys } from '../../stack/operator-keys';
import { backupDataConverter } from '../../codec/data-converter';
import { toCodecKeyRing } from '../../config/codec-config';
import { startPortalSimulator, type PortalSimulator } from '../../simulator/portal-simulator';
import { startTemporalDevServer, type TemporalDevServer } from '../../stack/temporal-dev-server';
import { startVaultDevServer, type VaultDevServer } from '../../stack/vault-dev-server';
import { loadWorkerConfig } from '../../worker/config';
import { connectWorker, createBackupWorker } from '../../worker/create-worker';

type History = temporal.api.history.v1.IHistory;
const EventType = temporal.api.enums.v1.EventType;

const ROOT = join(__dirname, '..', '..');
const FIXTURES_DEFAULT = join(process.cwd(), 'test', 'replay', 'fixtures');
const CLOSE_EVENTS = new Set<number>([
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
]);
const SCENARIO_TIMEOUT_MS = 180_000;

function parseArgs(argv: string[]): { out: string; only?: Set<string> } {
  let out = FIXTURES_DEFAULT;
  let only: Set<string> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--out') out = resolve(argv[++i] ?? '');
    else if (arg.startsWith('--out=')) out = resolve(arg.slice('--out='.length));
    else if (arg === '--only') only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write('usage: npx tsx test/replay/record-fixtures.ts [--out DIR] [--only name,name]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  return { out, ...(only ? { only } : {}) };
}

/** The git short sha of the tree whose workflow code runs here; `-dirty` if workflows/ or domain/ differ from it. */
function recordedFrom(): string {
  const git = (...args: string[]) => execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' }).trim();
  try {
    const sha = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'workflows', 'domain').length > 0;
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

/** The fixed, test-only payload codec key ring; created once in `<out>/codec-keys.txt`. */
function codecKeys(out: string): string {
  const file = join(out, 'codec-keys.txt');
  if (!existsSync(file)) {
    mkdirSync(out, { recursive: true });
    writeFileSync(file, `replay-key-1:${randomBytes(32).toString('base64')}\n`);
    process.stdout.write(`created a new test-only codec key ring in ${file}\n`);
  }
  return readFileSync(file, 'utf8').trim();
}

function extraWorkerEnv(): NodeJS.ProcessEnv {
  const raw = process.env.RECORD_WORKER_ENV_JSON;
  if (!raw) return {};
  const parsed: unknown = JSON.parse(raw);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('RECORD_WORKER_ENV_JSON must be a JSON object of variable names to string values');
  }
  return Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, String(value)]));
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

interface Recorded {
  file: string;
  workflowId: string;
  workflowType: string;
  events: number;
  lastEvent: string;
  bytes: number;
}

async function main(): Promise<void> {
  const { out, only } = parseArgs(process.argv.slice(2));
  const sha = recordedFrom();
  const keys = codecKeys(out);
  const logDir = mkdtempSync(join(tmpdir(), 'record-fixtures-'));
  process.stdout.write(`recording from ${ROOT} (code ${sha}) into ${out}; server logs in ${logDir}\n`);

  Runtime.install({ logger: new DefaultLogger(process.env.RECORD_LOG_LEVEL === 'WARN' ? 'WARN' : 'ERROR'), shutdownSignals: [] });

  const cleanups: (() => Promise<unknown>)[] = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => process.stderr.write(`cleanup failed: ${String(error)}\n`));
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: stopping the servers\n`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const recorded: Recorded[] = [];
  try {
    const started = Date.now();
    const servers = await Promise.allSettled([
      startTemporalDevServer({ logFile: join(logDir, 'temporal.log') }),
      startVaultDevServer({ logFile: join(logDir, 'vault.log') }),
    ]);
    for (const s of servers) if (s.status === 'fulfilled') cleanups.push(() => s.value.stop());
    for (const s of servers) if (s.status === 'rejected') throw s.reason;
    const temporalServer = (servers[0] as PromiseFulfilledResult<TemporalDevServer>).value;
    const vault = (servers[1] as PromiseFulfilledResult<VaultDevServer>).value;
    const simulator: PortalSimulator = await startPortalSimulator({ seed: 7 });
    cleanups.push(() => simulator.close());
    process.stdout.write(`servers ready in ${Date.now() - started} ms: Temporal ${temporalServer.address}, Vault ${vault.addr}\n`);

    const taskQueue = `replay-${randomBytes(4).toString('hex')}`;
    const workerEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: temporalServer.address,
      TEMPORAL_NAMESPACE: temporalServer.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      TEMPORAL_WORKER_VERSIONING: 'off',
      PAYLOAD_CODEC_KEYS: keys,
      // The workers' own key, only for this recording: replay never opens sealed shares.
      SHARE_SEALING_KEYS: `replay-seal-1:${randomBytes(32).toString('base64')}`,
      PORTAL_ENCLAVE_URL: simulator.url,
      PORTAL_API_URL: simulator.url,
      PORTAL_TIMEOUT_MS: '5000',
      VAULT_ADDR: vault.addr,
      VAULT_TOKEN: vault.rootToken,
      VAULT_TRANSIT_MOUNT: vault.transitMount,
      VAULT_TRANSIT_KEY: vault.transitKey,
      VAULT_TIMEOUT_MS: '5000',
      RECOVERY_APPROVERS: 'ops-alice,ops-bob',
      CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
      SIGNING_SHARES_URL: `${simulator.url}/backend/users/{userId}/signing-shares`,
      WORKER_SHUTDOWN_GRACE_MS: '2000',
      LOG_LEVEL: 'warn',
      ...extraWorkerEnv(),
    };
    const config = loadWorkerConfig(workerEnv);

    const bundling = Date.now();
    const nativeConnection = await connectWorker(config);
    cleanups.push(() => nativeConnection.close());
    const worker = await createBackupWorker(config, nativeConnection, (message) => process.stderr.write(`worker: ${message}\n`));
    const running = worker.run();
    cleanups.push(async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    });
    process.stdout.write(`worker on ${taskQueue} ready in ${Date.now() - bundling} ms\n`);

    const connection = await Connection.connect({ address: temporalServer.address });
    cleanups.push(() => connection.close());
    const client = new Client({
      connection,
      namespace: temporalServer.namespace,
      dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: keys })),
    });
    const backups = new BackupClient(client, taskQueue);
    const batches = new BatchClient(client, taskQueue);
    // Recoveries are requested by ops-carol and approved by ops-alice and ops-bob (keys seeded here).
    const signingTokens = await seedSigningKeys(vault.addr, vault.rootToken, operatorKeyNames(['ops-alice', 'ops-bob', 'ops-carol']));
    const operators = approvingRecoveriesWith((operator) => transitSigner(operator, { addr: vault.addr, token: signingTokens[operator]! }), { temporal: client, taskQueue });
    const recoveries = operators.approvingClient();
    const drills = new DrillClient(client, taskQueue);
    const rotations = new KeysClient(client, taskQueue);
    const backedUp = async (prefix: string) => {
      const userId = seedUser(prefix);
      await backups.startBackupWorkflow(userId);
      await backups.waitForBackup(userId);
      return userId;
    };
    const recoveryParked = (userId: string) =>
      eventually(`recovery of ${userId} to park`, async () => ((await recoveries.getRecoveryStatus(userId)).status === 'NEEDS_ATTENTION' ? true : undefined));

    let counter = 0;
    const seedUser = (prefix: string) => {
      counter += 1;
      const userId = `replay-${prefix}-${counter}-${randomBytes(3).toString('hex')}`;
      simulator.state.seedUser(userId);
      return userId;
    };
    const parked = (userId: string) =>
      eventually(`backup of ${userId} to park`, async () => {
        const status = await backups.getBackupStatus(userId);
        return status.status === 'NEEDS_ATTENTION' ? status : undefined;
      });
    /** Waits until the run has closed, whatever its outcome. */
    const closed = async (workflowId: string, runId?: string) => {
      const handle = client.workflow.getHandle(workflowId, runId);
      await handle.result().catch(() => undefined);
      return eventually(`${workflowId} to close`, async () => {
        const description = await handle.describe();
        return description.status.name === 'RUNNING' ? undefined : description;
      });
    };

    mkdirSync(out, { recursive: true });
    /** Fetches one closed run's history (as stored: payloads encrypted) and writes it as a fixture. */
    const record = async (name: string, workflowId: string, runId?: string) => {
      const description = await closed(workflowId, runId);
      const history: History = await client.workflow.getHandle(workflowId, description.runId).fetchHistory();
      const events = history.events ?? [];
      const last = events[events.length - 1];
      const lastType = last?.eventType ?? EventType.EVENT_TYPE_UNSPECIFIED;
      if (!CLOSE_EVENTS.has(lastType)) {
        throw new Error(`${name}: the history of ${workflowId} ends with ${EventType[lastType]}, not a close event; not recorded`);
      }
      const fixture = {
        workflowId,
        workflowType: description.type,
        recordedFrom: sha,
        history: JSON.parse(historyToJSON(history)) as unknown,
      };
      const file = join(out, `${name}.json`);
      const text = `${JSON.stringify(fixture, null, 2)}\n`;
      writeFileSync(file, text);
      const entry: Recorded = {
        file,
        workflowId,
        workflowType: description.type,
        events: events.length,
        lastEvent: EventType[lastType]!.replace('EVENT_TYPE_', ''),
        bytes: Buffer.byteLength(text),
      };
      recorded.push(entry);
      process.stdout.write(`  recorded ${name}.json: ${entry.workflowType} ${workflowId}, ${entry.events} events, ends ${entry.lastEvent}\n`);
    };

    const expectFailure = async (userId: string) => {
      try {
        await backups.waitForBackup(userId);
      } catch (error) {
        return error;
      }
      throw new Error(`the backup of ${userId} completed, but was expected to fail`);
    };

    const scenarios: Record<string, () => Promise<void>> = {
      'backup-completed': async () => {
        const userId = seedUser('completed');
        const { workflowId } = await backups.startBackupWorkflow(userId);
        await backups.waitForBackup(userId);
        await record('backup-completed', workflowId);
      },
      'backup-parked-retried': async () => {
        const userId = seedUser('parked');
        simulator.faults.add({ route: 'markPairs', kind: 'status', status: 401, body: 'Incorrect API key format', userId });
        const { workflowId } = await backups.startBackupWorkflow(userId);
        await parked(userId);
        simulator.faults.clear();
        await backups.retryBackup(userId, operators.as('ops-alice').signer!);
        await backups.waitForBackup(userId);
        await record('backup-parked-retried', workflowId);
      },
      'backup-abandoned': async () => {
        const userId = seedUser('abandoned');
        simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, userId });
        const { workflowId } = await backups.startBackupWorkflow(userId);
        await parked(userId);
        await backups.abandonBackup(userId, 'recorded for replay', operators.as('ops-alice').signer!);
        const failure = await expectFailure(userId);
        simulator.faults.clear();
        if (!String((failure as Error).message).includes('recorded for replay')) throw failure;
        await record('backup-abandoned', workflowId);
      },
      'backup-cancelled': async () => {
        const userId = seedUser('cancelled');
        simulator.faults.add({ route: 'markPairs', kind: 'status', status: 403, userId });
        const { workflowId } = await backups.startBackupWorkflow(userId);
        await parked(userId);
        await client.workflow.getHandle(workflowId).cancel();
        const description = await closed(workflowId);
        simulator.faults.clear();
        if (description.status.name !== 'CANCELLED') throw new Error(`${workflowId} closed as ${description.status.name}, not CANCELLED`);
        await record('backup-cancelled', workflowId);
      },
      'backup-lost-response': async () => {
        const userId = seedUser('lost');
        simulator.faults.add({ route: 'backup', kind: 'lost-response', count: 1, userId });
        const { workflowId } = await backups.startBackupWorkflow(userId);
        const result = await backups.waitForBackup(userId);
        if (result.orphanedPairIds.length === 0) process.stderr.write('  note: the lost response left no orphaned pair\n');
        await record('backup-lost-response', workflowId);
      },
      'backup-failed-step1': async () => {
        const userId = seedUser('revoked');
        simulator.state.user(userId)!.apiKeyRevoked = true;
        const { workflowId } = await backups.startBackupWorkflow(userId);
        const failure = await expectFailure(userId);
        if ((failure as { reasonType?: string }).reasonType !== 'PortalAuthError') throw failure;
        await record('backup-failed-step1', workflowId);
      },
      'batch-continue-as-new': async () => {
        const userIds = Array.from({ length: 5 }, () => seedUser('can'));
        const { batchId, workflowId } = await batches.startBatch({
          source: { kind: 'list', userIds },
          concurrency: 2,
          backupsPerMinute: 6000,
          startsPerRun: 2,
          pageSize: 2,
        });
        const report = await batches.wait(batchId);
        if (report.counts.completed !== 5 || report.runs < 2) {
          throw new Error(`unexpected batch report: ${JSON.stringify(report.counts)}, runs ${report.runs}`);
        }
        // Visibility is eventually consistent: wait until every run is listed and closed.
        const runs = await eventually(`all ${report.runs} runs of ${workflowId} listed`, async () => {
          const listed: { runId: string; startTime: Date; status: string }[] = [];
          for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
            listed.push({ runId: execution.runId, startTime: execution.startTime, status: execution.status.name });
          }
          return listed.length === report.runs && listed.every((run) => run.status !== 'RUNNING') ? listed : undefined;
        });
        runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
        for (const [index, run] of runs.entries()) await record(`batch-continue-as-new-run${index + 1}`, workflowId, run.runId);
      },
      'batch-joined': async () => {
        const busy = seedUser('join-busy');
        const other = seedUser('join-other');
        simulator.faults.add({ route: 'backup', kind: 'latency', latencyMs: 2_000, count: 1, userId: busy });
        const { workflowId: busyWorkflowId } = await backups.startBackupWorkflow(busy);
        const { batchId, workflowId } = await batches.startBatch({
          source: { kind: 'list', userIds: [busy, other] },
          concurrency: 5,
          backupsPerMinute: 6000,
        });
        const report = await batches.wait(batchId);
        if (report.counts.joined !== 1 || report.counts.completed !== 2) {
          throw new Error(`the batch did not join the running backup: ${JSON.stringify(report.counts)}`);
        }
        await record('batch-joined', workflowId);
        await record('backup-joined-by-batch', busyWorkflowId);
      },
      'batch-cancelled-update': async () => {
        const userIds = Array.from({ length: 6 }, () => seedUser('steer'));
        const { batchId, workflowId } = await batches.startBatch({ source: { kind: 'list', userIds }, concurrency: 1, backupsPerMinute: 60 });
        await eventually('the first backup of the batch to start', async () =>
          (await batches.status(batchId)).counts.started >= 1 ? true : undefined,
        );
        await batches.cancel(batchId, operators.as('ops-alice').signer!);
        const report = await batches.wait(batchId);
        if (report.status !== 'CANCELLED') throw new Error(`the batch ended ${report.status}, not CANCELLED`);
        await record('batch-cancelled-update', workflowId);
      },
      // Recovery (since e036cd8): completed with a fresh backup and a lost /v1/recover answer; parked
      // at HAND_OVER and retried; abandoned at MARK_SIGNING; failed before the point of no return.
      'recovery-completed': async () => {
        const userId = await backedUp('rec-ok');
        simulator.faults.add({ route: 'recover', kind: 'lost-response', count: 1, userId });
        await recoveries.startRecovery(userId);
        const result = await recoveries.waitForRecovery(userId);
        await record('recovery-completed', `recover-${userId}`);
        await record('backup-fresh-after-recovery', `backup-${userId}`, result.freshBackup!.runId);
      },
      'recovery-parked-retried': async () => {
        const userId = await backedUp('rec-parked');
        simulator.faults.add({ route: 'signingShares', kind: 'status', status: 422, userId });
        await recoveries.startRecovery(userId, { freshBackup: false });
        await recoveryParked(userId);
        simulator.faults.clear();
        await recoveries.retryRecovery(userId);
        await recoveries.waitForRecovery(userId);
        await record('recovery-parked-retried', `recover-${userId}`);
      },
      'recovery-abandoned': async () => {
        const userId = await backedUp('rec-abandoned');
        simulator.faults.add({ route: 'markSigningPairs', kind: 'status', status: 403, userId });
        await recoveries.startRecovery(userId, { freshBackup: false });
        await recoveryParked(userId);
        await recoveries.abandonRecovery(userId, 'recorded for replay');
        await recoveries.waitForRecovery(userId).catch(() => undefined);
        simulator.faults.clear();
        await record('recovery-abandoned', `recover-${userId}`);
      },
      // Since 6ac1dfd: a lost /v1/recover answer whose retry's look for orphans fails, so the run
      // looks again in findOrphanedSigningPairs (the recovery-orphan-signing-rescan patch).
      'recovery-orphan-rescan': async () => {
        const userId = await backedUp('rec-rescan');
        simulator.faults.add({ route: 'recover', kind: 'lost-response', count: 1, userId });
        const before = simulator.calls.recover ?? 0;
        await recoveries.startRecovery(userId, { freshBackup: false });
        while ((simulator.calls.recover ?? 0) === before) await new Promise((resolve) => setTimeout(resolve, 20));
        simulator.faults.add({ route: 'getClient', kind: 'status', status: 503, count: 1, userId });
        const result = await recoveries.waitForRecovery(userId);
        if (result.orphanedSigningPairIds.length !== 2) throw new Error(`expected two orphaned signing pairs, got ${result.orphanedSigningPairIds.length}`);
        await record('recovery-orphan-rescan', `recover-${userId}`);
      },
      // Since issue 19 (the recovery-approval-v1 patch): one approval, then a rejection at APPROVAL.
      'recovery-rejected': async () => {
        const userId = seedUser('rec-rejected');
        await operators.recoveries.startRecovery(userId, { freshBackup: false });
        await awaitingApproval(operators.recoveries, userId);
        await operators.as('ops-alice').approveRecovery(userId);
        await operators.as('ops-bob').rejectRecovery(userId, 'recorded for replay');
        await recoveries.waitForRecovery(userId).catch(() => undefined);
        await record('recovery-rejected', `recover-${userId}`);
      },
      'recovery-failed-find': async () => {
        const userId = seedUser('rec-none');
        await recoveries.startRecovery(userId);
        await recoveries.waitForRecovery(userId).catch(() => undefined);
        await record('recovery-failed-find', `recover-${userId}`);
      },
      // Restore drill (since 7493f0f): one sound backup, one tampered, one never backed up.
      'drill-completed': async () => {
        const sound = await backedUp('drill-sound');
        const tampered = await backedUp('drill-tampered');
        const none = seedUser('drill-none');
        const pair = simulator.state.user(tampered)!.wallets[0]!.backupSharePairs[0]!;
        pair.clientCipherText = simulator.state.user(sound)!.wallets[0]!.backupSharePairs[0]!.clientCipherText!;
        const { drillId } = await drills.runOnce({ source: { kind: 'list', userIds: [sound, tampered, none] }, usersPerMinute: 6000 });
        const report = await drills.wait(drillId);
        if (report.counts.failed !== 1) throw new Error(`unexpected drill report: ${JSON.stringify(report.counts)}`);
        await record('drill-completed', drillId);
        await record('drill-finding', `${drillId}-finding-${tampered}`);
      },
      // Key rotation (since 90afcdc): rotate, rewrap two users' backups, raise min_decryption_version.
      // Last: it changes the key every later scenario would use.
      'rotation-completed': async () => {
        const users = [await backedUp('rotate'), await backedUp('rotate')];
        await rotations.rotate({ source: { kind: 'list', userIds: users }, usersPerMinute: 6000, raiseMinDecryptionVersion: true, everyUser: true }, operators.as('ops-alice').signer!);
        const report = await rotations.wait();
        if (report.status !== 'COMPLETED' || report.counts.clientCiphertexts.verified !== 4) throw new Error(`unexpected rotation report: ${JSON.stringify(report.counts)}`);
        await record('rotation-completed', 'rotate-keys');
      },
    };

    if (only) {
      for (const name of only) if (!(name in scenarios)) throw new Error(`no scenario named ${name}`);
    }
    for (const [name, run] of Object.entries(scenarios)) {
      if (only && !only.has(name)) continue;
      const t0 = Date.now();
      process.stdout.write(`${name}…\n`);
      await withTimeout(name, run(), SCENARIO_TIMEOUT_MS);
      process.stdout.write(`  ${name} done in ${Date.now() - t0} ms\n`);
    }
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  process.stdout.write(`\nrecorded ${recorded.length} histories from code ${sha} into ${out}:\n`);
  for (const entry of recorded) {
    process.stdout.write(
      `  ${entry.file.slice(out.length + 1).padEnd(36)} ${entry.workflowType.padEnd(13)} ${String(entry.events).padStart(4)} events ${String(entry.bytes).padStart(8)} bytes  ${entry.lastEvent}\n`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`recording failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    if (error instanceof WorkflowFailedError && error.cause) process.stderr.write(`cause: ${error.cause.message}\n`);
    process.exit(1);
  },
);
