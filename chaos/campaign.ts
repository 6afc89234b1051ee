import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import nodeVault from 'node-vault';
import { StaticTokenAuth } from '../activities/vault-auth';
import { VaultTransit } from '../activities/vault-transit';
import { BackupClient } from '../client/backup-client';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { startPortalSimulator } from '../simulator/portal-simulator';
import { SeededRandom } from '../simulator/seeded-random';
import type { FaultRuleInput } from '../simulator/fault-rules';
import { freePort } from '../stack/free-port';
import type { ManagedProcess } from '../stack/managed-process';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import { TcpFaultProxy, type ProxyMode } from '../stack/tcp-fault-proxy';
import { startTemporalDevServer } from '../stack/temporal-dev-server';
import { setUpAppRole, setUpTransit, startVaultServer } from '../stack/vault-server';
import { BackupStatusKey, progressQuery } from '../workflows/backup-wallet-api';
import { percentile } from '../bench/percentile';
import { campaignOptionsSchema, type CampaignOptions, type CampaignOptionsInput } from './campaign-options';
import { candidateTokens, checkUser, INVARIANTS, ViolationLog, type BackupOutcome, type Invariant } from './invariants';
import { leaksIn, secretsOf, textsIn } from './secret-scan';


export type InfraFault = 'worker-kill' | 'temporal-restart' | 'vault-cut' | 'vault-restart';

export interface CampaignReport {
  seed: number;
  options: Omit<CampaignOptions, 'runDir' | 'quiet'>;
  durationMs: number;
  backups: { total: number; completed: number; parkedByCampaign: number; other: number; doubleStarted: number };
  operatorRetries: number;
  portalFaults: Record<string, number>;
  infraFaults: Record<InfraFault, number> & { vaultCutModes: Record<string, number> };
  orphans: number;
  completionMs: { p50: number; p95: number; max: number };
  violations: Record<Invariant, number>;
  violationTotal: number;
  violationDetails: ViolationLog['details'];
  runDir: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries a client call through a Temporal restart (the server is briefly unreachable). */
async function resilient<T>(what: string, call: () => Promise<T>, limitMs = 120_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const name = (error as Error).name;
      if (name === 'BackupActionRejectedError' || Date.now() > deadline) throw error;
      if (name !== 'ServiceError' && name !== 'ConnectionError' && !/UNAVAILABLE|connect|deadline|14 /i.test(String(error))) {
        throw new Error(`${what}: ${String(error)}`);
      }
      await sleep(500);
    }
  }
}

/**
 * A fault campaign: N backups over real servers while workers are SIGKILLed, Temporal and Vault
 * are restarted, Vault is cut off through a TCP proxy, Portal misbehaves per request and some
 * users' keys are revoked mid-run; then every invariant is checked and counted.
 */
export async function runCampaign(input: CampaignOptionsInput): Promise<CampaignReport> {
  const options = campaignOptionsSchema.parse(input);
  const { runDir } = options;
  mkdirSync(runDir, { recursive: true });
  const random = new SeededRandom(options.seed);
  const say = (line: string) => options.quiet || process.stdout.write(`[chaos] ${line}\n`);
  const started = Date.now();
  const cleanups: (() => Promise<unknown>)[] = [];

  try {
    say(`seed ${options.seed}: ${options.backups} backups, ${options.workers} workers, run dir ${runDir}`);
    const temporal = await startTemporalDevServer({ logFile: join(runDir, 'temporal.log'), dbFile: join(runDir, 'temporal.db') });
    cleanups.push(() => temporal.stop());
    const vault = await startVaultServer({ dataDir: join(runDir, 'vault'), logFile: join(runDir, 'vault.log') });
    cleanups.push(() => vault.stop());
    await setUpTransit(vault.addr, vault.rootToken);
    const appRole = await setUpAppRole(vault.addr, vault.rootToken, { tokenTtl: options.vaultTokenTtl, tokenMaxTtl: '10m' });
    const vaultProxy = new TcpFaultProxy({ host: '127.0.0.1', port: vault.port }, await freePort());
    await vaultProxy.start();
    cleanups.push(() => vaultProxy.stop());
    const simulator = await startPortalSimulator({ seed: options.seed });
    cleanups.push(() => simulator.close());

    const bundlePath = await writeWorkflowBundle(join(runDir, 'workflow-bundle.js'));

    const codecKeys = `chaos-1:${randomBytes(32).toString('base64')}`;
    const workerEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: 'mpc-backup-chaos',
      PAYLOAD_CODEC_KEYS: codecKeys,
      SHARE_SEALING_KEYS: `chaos-seal-1:${randomBytes(32).toString('base64')}`,
      PORTAL_ENCLAVE_URL: simulator.url,
      PORTAL_API_URL: simulator.url,
      PORTAL_TIMEOUT_MS: String(options.portalTimeoutMs),
      VAULT_ADDR: `http://127.0.0.1:${vaultProxy.port}`,
      VAULT_ROLE_ID: appRole.roleId,
      VAULT_SECRET_ID: appRole.secretId,
      VAULT_TIMEOUT_MS: '2000',
      CREDENTIALS_URL: `${simulator.url}/backend/users/{userId}/credentials`,
      WORKER_WORKFLOW_BUNDLE: bundlePath,
      WORKER_SHUTDOWN_GRACE_MS: '2000',
      LOG_LEVEL: 'info',
    };
    const spawnWorker = (index: number) =>
      spawnWorkerProcess(`worker-${index}`, { env: workerEnv, logFile: join(runDir, `worker-${index}.log`) });
    const workers: ManagedProcess[] = Array.from({ length: options.workers }, (_, i) => spawnWorker(i));
    cleanups.push(() => Promise.all(workers.map((worker) => worker.kill())));

    const connection = await Connection.connect({ address: temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })) });
    const rawClient = new Client({ connection });
    const backups = new BackupClient(client, 'mpc-backup-chaos');
    await waitForPollers(connection, 'mpc-backup-chaos');

    // --- Users, revocations and Portal faults -------------------------------------------------
    const userIds = Array.from({ length: options.backups }, (_, i) => `chaos-${options.seed}-${i + 1}`);
    for (const id of userIds) simulator.state.seedUser(id);
    const revoked = new Map<string, number>(); // userId → fault rule id
    for (const userId of userIds) {
      if (random.next() < options.revokedShare) revoked.set(userId, 0);
    }
    if (options.revokedShare > 0 && revoked.size === 0) revoked.set(userIds[Math.floor(userIds.length / 2)]!, 0);
    for (const userId of revoked.keys()) {
      const route = random.next() < 0.5 ? 'storeCipherText' : 'markPairs';
      revoked.set(userId, simulator.faults.add({ route, kind: 'status', status: 401, body: 'Invalid or revoked API key', userId }).id);
    }
    const doubleStart = new Set(userIds.filter(() => random.next() < options.doubleStartShare));
    const portalKinds: FaultRuleInput[] = [
      { route: '*', kind: 'status', status: 503 },
      { route: '*', kind: 'status', status: 500 },
      { route: '*', kind: 'rate-limit', retryAfterSeconds: 1 },
      { route: '*', kind: 'rate-limit', retryAfterSeconds: null },
      { route: '*', kind: 'html-error', status: 502 },
      { route: '*', kind: 'hang', latencyMs: options.portalTimeoutMs * 3 },
      { route: '*', kind: 'lost-response' },
      { route: '*', kind: 'malformed' },
    ];
    for (const rule of portalKinds) simulator.faults.add({ ...rule, probability: options.portalFaultRate });
    if (options.guaranteeEachFault) {
      const routes = ['backup', 'storeCipherText', 'getCipherText', 'markPairs'] as const;
      portalKinds.forEach((rule, i) => simulator.faults.add({ ...rule, route: routes[i % routes.length]!, count: 1 }));
    }

    // --- Infrastructure faults ----------------------------------------------------------------
    const infraFaults: CampaignReport['infraFaults'] = {
      'worker-kill': 0,
      'temporal-restart': 0,
      'vault-cut': 0,
      'vault-restart': 0,
      vaultCutModes: {},
    };
    const injectInfraFault = async (kind: InfraFault) => {
      infraFaults[kind] += 1;
      if (kind === 'worker-kill') {
        const index = Math.floor(random.next() * workers.length);
        await workers[index]!.kill();
        say(`SIGKILL worker-${index}`);
        await sleep(500 + random.next() * 2_000);
        workers[index] = spawnWorker(index);
      } else if (kind === 'temporal-restart') {
        say('SIGKILL Temporal, start it again on the same database');
        await temporal.restart();
      } else if (kind === 'vault-restart') {
        say('SIGKILL Vault, start and unseal it again');
        await vault.restart();
      } else {
        const modes: ProxyMode[] = ['refuse', 'blackhole', 'reset'];
        const mode = modes[Math.floor(random.next() * modes.length)]!;
        infraFaults.vaultCutModes[mode] = (infraFaults.vaultCutModes[mode] ?? 0) + 1;
        say(`Vault cut off (${mode})`);
        await vaultProxy.setMode(mode);
        await sleep(1_000 + random.next() * 4_000);
        await vaultProxy.setMode('pass');
      }
    };
    const milestones: [number, InfraFault][] = [
      [0.1, 'worker-kill'],
      [0.3, 'vault-cut'],
      [0.5, 'temporal-restart'],
      [0.7, 'vault-restart'],
      [0.85, 'worker-kill'],
    ];

    // --- Run: a window of backups in flight, an operator, and the fault loop -------------------
    const outcomes = new Map<string, BackupOutcome>();
    const inFlight = new Set<string>();
    let next = 0;
    let operatorRetries = 0;
    const retried = new Set<string>();
    let done = false;
    const deadline = started + options.timeoutMs;

    const faultLoop = (async () => {
      let nextRandomAt = Date.now() + -Math.log(1 - random.next()) * options.meanFaultIntervalMs;
      while (!done) {
        const fraction = outcomes.size / userIds.length;
        const milestone = milestones[0];
        if (milestone && fraction >= milestone[0]) {
          milestones.shift();
          await injectInfraFault(milestone[1]);
        } else if (Date.now() >= nextRandomAt) {
          const kinds: InfraFault[] = ['worker-kill', 'worker-kill', 'vault-cut', 'temporal-restart', 'vault-restart'];
          await injectInfraFault(kinds[Math.floor(random.next() * kinds.length)]!);
          nextRandomAt = Date.now() + -Math.log(1 - random.next()) * options.meanFaultIntervalMs;
        }
        await sleep(200);
      }
    })();

    const start = async (userId: string) => {
      inFlight.add(userId);
      if (doubleStart.has(userId)) {
        await Promise.all([
          resilient('start', () => backups.startBackupWorkflow(userId)),
          resilient('start', () => backups.startBackupWorkflow(userId)),
        ]);
      } else {
        await resilient('start', () => backups.startBackupWorkflow(userId));
      }
    };

    const poll = async (userId: string) => {
      const handle = client.workflow.getHandle(`backup-${userId}`);
      const description = await resilient('describe', () => handle.describe());
      const status = description.typedSearchAttributes.get(BackupStatusKey);
      if (description.status.name === 'RUNNING') {
        if (status !== 'NEEDS_ATTENTION') return;
        const ruleId = revoked.get(userId);
        if (ruleId === undefined || retried.has(userId)) {
          // Parked for a reason the campaign did not cause: record it and stop waiting.
          outcomes.set(userId, await finalOutcome(userId, 'NEEDS_ATTENTION'));
          inFlight.delete(userId);
          return;
        }
        // The operator restores the key, then resumes the backup.
        simulator.faults.remove(ruleId);
        retried.add(userId);
        await resilient('retry', () => backups.retryBackup(userId, 'chaos-operator'));
        operatorRetries += 1;
        return;
      }
      outcomes.set(userId, await finalOutcome(userId, description.status.name === 'COMPLETED' ? 'COMPLETED' : (status ?? description.status.name)));
      inFlight.delete(userId);
    };

    const finalOutcome = async (userId: string, status: string): Promise<BackupOutcome> => {
      const handle = client.workflow.getHandle(`backup-${userId}`);
      const outcome: BackupOutcome = { userId, status, revokedByCampaign: revoked.has(userId), runs: 0 };
      if (status === 'COMPLETED') outcome.result = await resilient('result', () => handle.result());
      else if (status === 'NEEDS_ATTENTION') {
        const progress = await resilient('progress', () => handle.query(progressQuery));
        outcome.failure = `parked at ${progress.step}: ${progress.lastError?.type}: ${progress.lastError?.message}`;
      } else {
        outcome.failure = await backups.waitForBackup(userId).then(
          () => 'completed',
          (e: Error) => e.message,
        );
      }
      const description = await resilient('describe', () => handle.describe());
      outcome.startedAt = description.startTime.getTime();
      outcome.closedAt = description.closeTime?.getTime();
      let runs = 0;
      for await (const _ of client.workflow.list({ query: `WorkflowId = 'backup-${userId}'` })) runs += 1;
      outcome.runs = runs;
      return outcome;
    };

    let lastReport = 0;
    while (outcomes.size < userIds.length) {
      if (Date.now() > deadline) throw new Error(`campaign timed out with ${inFlight.size} backups open`);
      while (inFlight.size < options.concurrency && next < userIds.length) await start(userIds[next++]!);
      await Promise.all([...inFlight].map((userId) => poll(userId)));
      if (Date.now() - lastReport > 5_000) {
        say(`${outcomes.size}/${userIds.length} done, ${inFlight.size} in flight`);
        lastReport = Date.now();
      }
      await sleep(250);
    }
    done = true;
    await faultLoop;
    await vaultProxy.setMode('pass');
    say('all backups ended; checking invariants');

    // --- Invariants ---------------------------------------------------------------------------
    const violations = new ViolationLog();
    const transit = new VaultTransit(
      { endpoint: vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 10_000 },
      new StaticTokenAuth(vault.rootToken),
      nodeVault({ endpoint: vault.addr, debug: () => undefined } as nodeVault.VaultOptions),
    );
    let orphans = 0;
    for (const userId of userIds) {
      const simClient = simulator.state.user(userId)!;
      orphans += (await checkUser(simClient, outcomes.get(userId)!, transit, violations)).orphans;
      const history = await resilient('history', () => rawClient.workflow.getHandle(`backup-${userId}`).fetchHistory());
      const leaks = leaksIn(textsIn(history), [...secretsOf(simClient), vault.rootToken]);
      for (const leak of leaks) violations.add('secret-in-history', `a secret of ${leak.length} characters`, userId);
    }
    const allSecrets = new Set(userIds.flatMap((id) => secretsOf(simulator.state.user(id)!)));
    for (const file of readdirSync(runDir).filter((name) => name.endsWith('.log'))) {
      const text = readFileSync(join(runDir, file), 'utf8');
      for (const token of candidateTokens(text)) {
        if (allSecrets.has(token)) violations.add('secret-in-logs', `${file}: a secret of ${token.length} characters`);
      }
      for (const token of [vault.rootToken, appRole.secretId]) {
        if (text.includes(token)) violations.add('secret-in-logs', `${file}: a Vault credential`);
      }
    }

    const durations = [...outcomes.values()]
      .filter((o) => o.status === 'COMPLETED' && o.closedAt && o.startedAt)
      .map((o) => o.closedAt! - o.startedAt!)
      .sort((a, b) => a - b);
    const statuses = [...outcomes.values()];
    const { runDir: _dir, quiet: _quiet, ...reported } = options;
    const report: CampaignReport = {
      seed: options.seed,
      options: reported,
      durationMs: Date.now() - started,
      backups: {
        total: userIds.length,
        completed: statuses.filter((o) => o.status === 'COMPLETED').length,
        parkedByCampaign: statuses.filter((o) => o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign).length,
        other: statuses.filter((o) => o.status !== 'COMPLETED' && !(o.status === 'NEEDS_ATTENTION' && o.revokedByCampaign)).length,
        doubleStarted: doubleStart.size,
      },
      operatorRetries,
      portalFaults: simulator.faults.firedByKind(),
      infraFaults,
      orphans,
      completionMs: { p50: percentile(durations, 50), p95: percentile(durations, 95), max: durations.at(-1) ?? 0 },
      violations: violations.counts,
      violationTotal: violations.total,
      violationDetails: violations.details,
      runDir,
    };
    writeFileSync(join(runDir, 'report.json'), JSON.stringify(report, null, 2));
    return report;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}

export function summarize(report: CampaignReport): string {
  const lines = [
    `fault campaign, seed ${report.seed}: ${report.backups.total} backups in ${(report.durationMs / 1000).toFixed(1)} s`,
    `  completed ${report.backups.completed}, parked by the campaign ${report.backups.parkedByCampaign}, other ${report.backups.other}` +
      ` (double-started ${report.backups.doubleStarted}, operator retries ${report.operatorRetries})`,
    `  Portal faults: ${Object.entries(report.portalFaults).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
    `  process faults: worker SIGKILL ${report.infraFaults['worker-kill']}, Temporal restart ${report.infraFaults['temporal-restart']}, ` +
      `Vault restart ${report.infraFaults['vault-restart']}, Vault cut ${report.infraFaults['vault-cut']} ` +
      `(${Object.entries(report.infraFaults.vaultCutModes).map(([k, v]) => `${k} ${v}`).join(', ')})`,
    `  orphaned pairs ${report.orphans}; completion p50 ${report.completionMs.p50} ms, p95 ${report.completionMs.p95} ms, max ${report.completionMs.max} ms`,
    `  violations: ${INVARIANTS.map((name) => `${name} ${report.violations[name]}`).join(', ')}`,
    report.violationTotal === 0 ? '  PASS: zero violations' : `  FAIL: ${report.violationTotal} violations (see report.json)`,
    `  reproduce: npm run chaos -- --backups ${report.backups.total} --seed ${report.seed}`,
  ];
  return lines.join('\n');
}
