import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import nodeVault from 'node-vault';
import type { Pool } from 'pg';
import { sharePlaintext } from '../activities';
import { sha256Hex } from '../activities/share-plaintext';
import { transitContext } from '../adapters/kms/transit-context';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { ciphertextVersion, VaultTransit } from '../adapters/vault/vault-transit';
import { BatchClient } from '../client/batch-client';
import { KeysClient } from '../client/keys-client';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { startPostgresServer, type PostgresServer } from '../stack/postgres-server';
import { startTemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer } from '../stack/vault-dev-server';
import { keyRotationPolicy, operatorVerifyPolicy } from '../stack/vault-policies';
import { operatorKeyNames, seedSigningKeys } from '../stack/operator-keys';
import { transitSigner } from '../stack/approving-recoveries';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
import type { RotationReport } from '../contracts/rotate-keys-api';
import { startSimulatorProcess } from './bench-stack';
import { cpuSeconds } from './process-stats';

/**
 * `npm run bench:rotation`: backs up N users (2 ciphertexts each) with the batch workflow, then
 * times `keys rotate --raise-min-version` over all of them on servers of its own (Temporal dev
 * server, Vault dev server, the simulator, one worker holding only the rotation policy), and checks
 * every stored ciphertext independently afterwards: on the new version, decrypting in its
 * user-and-pair context to exactly the `{id, share}` Portal issued, and the old ones refused.
 */
const program = new Command('bench-rotation')
  .option('--users <n>', 'users backed up, then rotated (two ciphertexts each)', '1000')
  .option('--store <kind>', 'portal or postgres', 'portal')
  .option('--rate <usersPerMinute>', 'the rotation’s pace (default: unthrottled)', '1000000')
  .option('--concurrency <n>', 'rewrap activities in flight', '4')
  .option('--users-per-activity <n>', 'users per rewrap activity', '10')
  .option('--latency-ms <ms>', 'simulator latency per Portal call', '0')
  .option('--out <dir>', 'where to write results', 'bench-results/rotation')
  .parse();
const options = program.opts<{ users: string; store: string; rate: string; concurrency: string; usersPerActivity: string; latencyMs: string; out: string }>();

const ROOT = join(__dirname, '..');
const seconds = (ms: number) => Math.round(ms / 100) / 10;

interface AdminPair {
  id: string;
  share: string;
  clientCipherText?: string;
}

type StoredCiphertext = Awaited<ReturnType<typeof storedCiphertexts>>[number];

async function main(): Promise<void> {
  const users = Number(options.users);
  const store = options.store;
  if (store !== 'portal' && store !== 'postgres') throw new Error('--store must be portal or postgres');
  const dir = join(resolve(ROOT, options.out), `${store}-${users}`);
  mkdirSync(dir, { recursive: true });
  process.stdout.write(`[bench:rotation] ${users} users, ${store} store; servers and logs in ${dir}\n`);
  const stack = await startRotationStack(dir, users, store);
  try {
    await waitForPollers(stack.connection, 'bench-rotation', stack.worker.exited);
    const backup = await backUpEveryone(stack, users);
    const before = await storedCiphertexts(stack.simulatorUrl, users, stack.pool);
    const rotation = await timeRotation(stack);
    const after = await storedCiphertexts(stack.simulatorUrl, users, stack.pool);
    const check = await independentCheck(stack, rotation.report, before, after);
    const results = {
      date: new Date().toISOString(),
      users,
      store,
      storedCiphertexts: after.length,
      backup,
      rotation: {
        seconds: seconds(rotation.ms),
        usersPerSecond: Math.round((users / (rotation.ms / 1000)) * 10) / 10,
        ciphertextsPerSecond: Math.round((after.length / (rotation.ms / 1000)) * 10) / 10,
        settings: { usersPerMinute: Number(options.rate), concurrency: Number(options.concurrency), usersPerActivity: Number(options.usersPerActivity) },
        status: rotation.report.status,
        counts: rotation.report.counts,
        failures: rotation.report.failures.length + (rotation.report.failuresOmitted ?? 0),
        minDecryptionVersion: rotation.report.minDecryptionVersion,
        workflowRuns: rotation.report.runs,
        cpuSeconds: rotation.cpu,
      },
      independentCheck: check,
    };
    writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    printSummary(results, rotation.report, { before, after, target: rotation.report.key?.targetVersion ?? -1, dir });
  } finally {
    await stack.stop();
  }
}

type RotationStack = Awaited<ReturnType<typeof startRotationStack>>;

/**
 * Temporal and Vault dev servers, (postgres store) PostgreSQL migrated, the simulator seeded with
 * `users`, and one worker that holds only the rotation policy (encrypt, decrypt, read; rotate,
 * rewrap, config).
 */
const BENCH_APPROVER = 'ops-bench';

async function startRotationStack(dir: string, users: number, store: 'portal' | 'postgres') {
  const [temporal, vault] = await Promise.all([
    startTemporalDevServer({ logFile: join(dir, 'temporal.log') }),
    startVaultDevServer({ logFile: join(dir, 'vault.log') }),
  ]);
  let postgres: PostgresServer | undefined;
  let pool: Pool | undefined;
  if (store === 'postgres') {
    postgres = await startPostgresServer({ logFile: join(dir, 'postgres.log') });
    pool = createDatabasePool(postgres.url);
    await migrate(pool);
  }
  const { simulator, simulatorUrl } = await startSimulatorProcess(dir, { users, latencyMs: Number(options.latencyMs) });
  const admin = nodeVault({ endpoint: vault.addr, token: vault.rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  await admin.addPolicy({ name: 'mpc-backup-rotation', rules: `${keyRotationPolicy(vault.transitKey)}\n${operatorVerifyPolicy()}` });
  const token = ((await admin.tokenCreate({ policies: ['mpc-backup-rotation'], ttl: '8h' })) as { auth: { client_token: string } }).auth.client_token;
  // The rotation is started by an approver's signed request (docs/restore.md, "Roles and approvals").
  const operatorTokens = await seedSigningKeys(vault.addr, vault.rootToken, operatorKeyNames([BENCH_APPROVER]));

  const bundlePath = await writeWorkflowBundle(join(dir, 'workflow-bundle.js'));
  const codecKeys = `bench-1:${randomBytes(32).toString('base64')}`;
  const worker = spawnWorkerProcess('worker', {
    logFile: join(dir, 'worker.log'),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: 'bench-rotation',
      // One build, never a second deployed beside it: unversioned (docs/changing-workflows.md).
      TEMPORAL_WORKER_VERSIONING: 'off',
      PAYLOAD_CODEC_KEYS: codecKeys,
      SHARE_SEALING_KEYS: `bench-seal-1:${randomBytes(32).toString('base64')}`,
      PORTAL_ENCLAVE_URL: simulatorUrl,
      PORTAL_API_URL: simulatorUrl,
      VAULT_ADDR: vault.addr,
      VAULT_TOKEN: token,
      RECOVERY_APPROVERS: BENCH_APPROVER,
      RECOVERY_APPROVALS: '1',
      CREDENTIALS_URL: `${simulatorUrl}/backend/users/{userId}/credentials`,
      ...(postgres ? { CIPHERTEXT_STORE: 'postgres', DATABASE_URL: postgres.url } : {}),
      WORKER_WORKFLOW_BUNDLE: bundlePath,
      WORKER_SHUTDOWN_GRACE_MS: '5000',
      WORKER_MAX_CONCURRENT_ACTIVITIES: '200',
      LOG_LEVEL: 'warn',
    },
  });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, dataConverter: backupDataConverter(toCodecKeyRing({ PAYLOAD_CODEC_KEYS: codecKeys })) });
  return {
    temporal,
    vault,
    admin,
    approver: transitSigner(BENCH_APPROVER, { addr: vault.addr, token: operatorTokens[BENCH_APPROVER]! }),
    pool,
    simulator,
    simulatorUrl,
    worker,
    connection,
    client,
    /** The users as the company backend lists them (the simulator serves its seeded users). */
    source: { kind: 'http' as const, url: `${simulatorUrl}/backend/users` },
    async stop() {
      await worker.stop(15_000);
      await connection.close();
      await pool?.end();
      await Promise.all([simulator.stop(), temporal.stop(), vault.stop(), postgres?.stop()]);
    },
  };
}

/** The stored backups: one batch over every user; all must complete. */
async function backUpEveryone(stack: RotationStack, users: number): Promise<{ completed: number; seconds: number }> {
  const backupStarted = Date.now();
  const batches = new BatchClient(stack.client, 'bench-rotation');
  const { batchId } = await batches.startBatch({ source: stack.source, concurrency: 20, backupsPerMinute: 1e7, pageSize: 500 });
  const batch = await batches.wait(batchId);
  const backupMs = Date.now() - backupStarted;
  process.stdout.write(`[bench:rotation] backups: ${batch.counts.completed} completed, ${batch.counts.failed + batch.counts.parked} not, in ${seconds(backupMs)} s\n`);
  if (batch.counts.completed !== users) throw new Error(`only ${batch.counts.completed} of ${users} backups completed`);
  return { completed: batch.counts.completed, seconds: seconds(backupMs) };
}

/** The rotation, timed, with the CPU each process spent on it. */
async function timeRotation(stack: RotationStack): Promise<{ report: RotationReport; ms: number; cpu: Record<string, number> }> {
  const pids = { worker: stack.worker.child.pid!, temporal: stack.temporal.process.child.pid!, vault: stack.vault.process.child.pid!, simulator: stack.simulator.child.pid! };
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const keys = new KeysClient(stack.client, 'bench-rotation');
  const rotationStarted = Date.now();
  await keys.rotate({
    source: stack.source,
    usersPerMinute: Number(options.rate),
    concurrency: Number(options.concurrency),
    usersPerActivity: Number(options.usersPerActivity),
    pageSize: 500,
    raiseMinDecryptionVersion: true,
    everyUser: true,
  }, stack.approver);
  const report = await keys.wait();
  const ms = Date.now() - rotationStarted;
  const cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, Math.round((cpuSeconds(pid) - cpuBefore[name]!) * 10) / 10]));
  return { report, ms, cpu };
}

/** Independent check of every stored ciphertext, with Vault's root token: on the new version, decrypting to the issued share, the old ones refused. */
async function independentCheck(stack: RotationStack, report: RotationReport, before: StoredCiphertext[], after: StoredCiphertext[]) {
  const { vault } = stack;
  const transit = new VaultTransit({ endpoint: vault.addr, mount: 'transit', keyName: vault.transitKey, timeoutMs: 30_000 }, new StaticTokenAuth(vault.rootToken));
  const target = report.key?.targetVersion ?? -1;
  const key = (await stack.admin.read(`transit/keys/${vault.transitKey}`)) as { data: { latest_version: number; min_decryption_version: number } };
  return {
    onTargetVersion: after.filter((entry) => ciphertextVersion(entry.ciphertext) === target).length,
    decryptToIssuedShare: await countDecrypting(transit, after),
    oldCiphertextsStillDecrypting: await countDecrypting(transit, before),
    key: { latestVersion: key.data.latest_version, minDecryptionVersion: key.data.min_decryption_version },
  };
}

function printSummary(
  results: { users: number; store: string; rotation: { seconds: number; usersPerSecond: number; ciphertextsPerSecond: number; cpuSeconds: Record<string, number> }; independentCheck: Awaited<ReturnType<typeof independentCheck>> },
  report: RotationReport,
  seen: { before: StoredCiphertext[]; after: StoredCiphertext[]; target: number; dir: string },
): void {
  const { users, store, rotation } = results;
  const { onTargetVersion: onTarget, decryptToIssuedShare: decrypting, oldCiphertextsStillDecrypting: oldStillDecrypting, key } = results.independentCheck;
  const { before, after, target } = seen;
  const c = report.counts.clientCiphertexts;
  process.stdout.write(
    [
      `[bench:rotation] rotation of ${users} stored backups (${after.length} ciphertexts, ${store} store): ${rotation.seconds} s, ` +
        `${rotation.usersPerSecond} users/s, ${rotation.ciphertextsPerSecond} ciphertexts/s (${report.runs} workflow run(s))`,
      `[bench:rotation]   report: ${report.status}; users visited ${report.counts.usersVisited}, failed ${report.counts.usersFailed}, deferred ${report.counts.usersDeferred}; ` +
        `ciphertexts rewrapped ${c.rewrapped}, already current ${c.alreadyCurrent}, verified ${c.verified}, failed ${c.failed}`,
      `[bench:rotation]   min_decryption_version: ${report.minDecryptionVersion.raised ? `raised to ${report.minDecryptionVersion.minDecryptionVersion}` : `not raised (${report.minDecryptionVersion.reason ?? 'not asked'})`}`,
      `[bench:rotation]   independent check: ${onTarget}/${after.length} on version ${target}, ${decrypting}/${after.length} decrypt to the share Portal issued, ` +
        `${oldStillDecrypting}/${before.length} old ciphertexts still decrypt; key latest ${key.latestVersion}, min ${key.minDecryptionVersion}`,
      `[bench:rotation]   CPU seconds during the rotation: ${Object.entries(rotation.cpuSeconds).map(([name, s]) => `${name} ${s}`).join(', ')}`,
      `[bench:rotation]   results: ${join(seen.dir, 'results.json')}`,
    ].join('\n') + '\n',
  );
}

/** Every stored ciphertext with its user, pair and the digest of the `{id, share}` Portal issued (from the simulator's admin view). */
async function storedCiphertexts(simulatorUrl: string, users: number, pool?: Pool) {
  const entries: { userId: string; pairId: string; ciphertext: string; expectedSha256: string }[] = [];
  const rows = new Map<string, string>();
  if (pool) {
    for (const row of (await pool.query('SELECT user_id, pair_id, ciphertext FROM client_ciphertexts')).rows as { user_id: string; pair_id: string; ciphertext: string }[]) {
      rows.set(`${row.user_id}/${row.pair_id}`, row.ciphertext);
    }
  }
  for (let i = 1; i <= users; i += 1) {
    const userId = `user-${i}`;
    const view = (await (await fetch(`${simulatorUrl}/admin/users/${userId}`)).json()) as { wallets: { backupSharePairs: AdminPair[] }[] };
    for (const pair of view.wallets.flatMap((wallet) => wallet.backupSharePairs)) {
      const ciphertext = pool ? rows.get(`${userId}/${pair.id}`) : pair.clientCipherText;
      if (ciphertext) entries.push({ userId, pairId: pair.id, ciphertext, expectedSha256: sha256Hex(sharePlaintext({ id: pair.id, share: pair.share })) });
    }
  }
  return entries;
}

async function countDecrypting(transit: VaultTransit, entries: StoredCiphertext[]): Promise<number> {
  let count = 0;
  for (let i = 0; i < entries.length; i += 250) {
    const slice = entries.slice(i, i + 250);
    const opened = await transit.decryptEach(slice.map((e) => ({ ciphertext: e.ciphertext, context: transitContext(e.userId, e.pairId) })));
    opened.forEach((result, index) => {
      if ('plaintext' in result && sha256Hex(result.plaintext) === slice[index]!.expectedSha256) count += 1;
    });
  }
  return count;
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench:rotation] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
