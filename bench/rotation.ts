import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import nodeVault from 'node-vault';
import type { Pool } from 'pg';
import { sharePlaintext } from '../activities';
import { transitContext } from '../adapters/kms/transit-context';
import { StaticTokenAuth } from '../adapters/vault/vault-auth';
import { ciphertextVersion, VaultTransit } from '../adapters/vault/vault-transit';
import { BatchClient } from '../client/batch-client';
import { KeysClient } from '../client/keys-client';
import { backupDataConverter } from '../codec/data-converter';
import { toCodecKeyRing } from '../config/codec-config';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { freePort } from '../stack/free-port';
import { startProcess, waitUntil } from '../stack/managed-process';
import { startPostgresServer, type PostgresServer } from '../stack/postgres-server';
import { startTemporalDevServer } from '../stack/temporal-dev-server';
import { startVaultDevServer } from '../stack/vault-dev-server';
import { keyRotationPolicy } from '../stack/vault-policies';
import { spawnWorkerProcess, waitForPollers, writeWorkflowBundle } from '../stack/worker-process';
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
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const seconds = (ms: number) => Math.round(ms / 100) / 10;

interface AdminPair {
  id: string;
  share: string;
  clientCipherText?: string;
}

async function main(): Promise<void> {
  const users = Number(options.users);
  const store = options.store;
  if (store !== 'portal' && store !== 'postgres') throw new Error('--store must be portal or postgres');
  const dir = join(resolve(ROOT, options.out), `${store}-${users}`);
  mkdirSync(dir, { recursive: true });
  process.stdout.write(`[bench:rotation] ${users} users, ${store} store; servers and logs in ${dir}\n`);

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
  const simPort = await freePort();
  const simulatorUrl = `http://127.0.0.1:${simPort}`;
  const simulator = startProcess(
    'simulator',
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'simulator', 'main.ts'), '--port', String(simPort), '--users', String(users), '--latency-ms', options.latencyMs],
    { logFile: join(dir, 'simulator.log'), cwd: ROOT },
  );
  await waitUntil('simulator', async () => (await fetch(`${simulatorUrl}/health`)).ok, 60_000, simulator.exited);

  // The worker holds only the rotation policy (encrypt, decrypt, read; rotate, rewrap, config).
  const admin = nodeVault({ endpoint: vault.addr, token: vault.rootToken, debug: () => undefined } as nodeVault.VaultOptions);
  await admin.addPolicy({ name: 'mpc-backup-rotation', rules: keyRotationPolicy(vault.transitKey) });
  const token = ((await admin.tokenCreate({ policies: ['mpc-backup-rotation'], ttl: '8h' })) as { auth: { client_token: string } }).auth.client_token;

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
  try {
    await waitForPollers(connection, 'bench-rotation', worker.exited);
    const source = { kind: 'http' as const, url: `${simulatorUrl}/backend/users` };

    // 1. The stored backups: one batch over every user.
    const backupStarted = Date.now();
    const batches = new BatchClient(client, 'bench-rotation');
    const { batchId } = await batches.startBatch({ source, concurrency: 20, backupsPerMinute: 1e7, pageSize: 500 });
    const batch = await batches.wait(batchId);
    const backupMs = Date.now() - backupStarted;
    process.stdout.write(`[bench:rotation] backups: ${batch.counts.completed} completed, ${batch.counts.failed + batch.counts.parked} not, in ${seconds(backupMs)} s\n`);
    if (batch.counts.completed !== users) throw new Error(`only ${batch.counts.completed} of ${users} backups completed`);
    const before = await storedCiphertexts(simulatorUrl, users, pool);

    // 2. The rotation, timed, with the CPU each process spent on it.
    const pids = { worker: worker.child.pid!, temporal: temporal.process.child.pid!, vault: vault.process.child.pid!, simulator: simulator.child.pid! };
    const cpuBefore = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const keys = new KeysClient(client, 'bench-rotation');
    const rotationStarted = Date.now();
    await keys.rotate({
      source,
      usersPerMinute: Number(options.rate),
      concurrency: Number(options.concurrency),
      usersPerActivity: Number(options.usersPerActivity),
      pageSize: 500,
      raiseMinDecryptionVersion: true,
      everyUser: true,
    });
    const report = await keys.wait();
    const rotationMs = Date.now() - rotationStarted;
    const cpu = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, Math.round((cpuSeconds(pid) - cpuBefore[name]!) * 10) / 10]));

    // 3. Independent check of every stored ciphertext, with Vault's root token.
    const transit = new VaultTransit({ endpoint: vault.addr, mount: 'transit', keyName: vault.transitKey, timeoutMs: 30_000 }, new StaticTokenAuth(vault.rootToken));
    const after = await storedCiphertexts(simulatorUrl, users, pool);
    const target = report.key?.targetVersion ?? -1;
    const onTarget = after.filter((entry) => ciphertextVersion(entry.ciphertext) === target).length;
    const decrypting = await countDecrypting(transit, after);
    const oldStillDecrypting = await countDecrypting(transit, before);
    const key = (await admin.read(`transit/keys/${vault.transitKey}`)) as { data: { latest_version: number; min_decryption_version: number } };

    const results = {
      date: new Date().toISOString(),
      users,
      store,
      storedCiphertexts: after.length,
      backup: { completed: batch.counts.completed, seconds: seconds(backupMs) },
      rotation: {
        seconds: seconds(rotationMs),
        usersPerSecond: Math.round((users / (rotationMs / 1000)) * 10) / 10,
        ciphertextsPerSecond: Math.round((after.length / (rotationMs / 1000)) * 10) / 10,
        settings: { usersPerMinute: Number(options.rate), concurrency: Number(options.concurrency), usersPerActivity: Number(options.usersPerActivity) },
        status: report.status,
        counts: report.counts,
        failures: report.failures.length + (report.failuresOmitted ?? 0),
        minDecryptionVersion: report.minDecryptionVersion,
        workflowRuns: report.runs,
        cpuSeconds: cpu,
      },
      independentCheck: {
        onTargetVersion: onTarget,
        decryptToIssuedShare: decrypting,
        oldCiphertextsStillDecrypting: oldStillDecrypting,
        key: { latestVersion: key.data.latest_version, minDecryptionVersion: key.data.min_decryption_version },
      },
    };
    writeFileSync(join(dir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    const c = report.counts.clientCiphertexts;
    process.stdout.write(
      [
        `[bench:rotation] rotation of ${users} stored backups (${after.length} ciphertexts, ${store} store): ${results.rotation.seconds} s, ` +
          `${results.rotation.usersPerSecond} users/s, ${results.rotation.ciphertextsPerSecond} ciphertexts/s (${report.runs} workflow run(s))`,
        `[bench:rotation]   report: ${report.status}; users visited ${report.counts.usersVisited}, failed ${report.counts.usersFailed}, deferred ${report.counts.usersDeferred}; ` +
          `ciphertexts rewrapped ${c.rewrapped}, already current ${c.alreadyCurrent}, verified ${c.verified}, failed ${c.failed}`,
        `[bench:rotation]   min_decryption_version: ${report.minDecryptionVersion.raised ? `raised to ${report.minDecryptionVersion.minDecryptionVersion}` : `not raised (${report.minDecryptionVersion.reason ?? 'not asked'})`}`,
        `[bench:rotation]   independent check: ${onTarget}/${after.length} on version ${target}, ${decrypting}/${after.length} decrypt to the share Portal issued, ` +
          `${oldStillDecrypting}/${before.length} old ciphertexts still decrypt; key latest ${key.data.latest_version}, min ${key.data.min_decryption_version}`,
        `[bench:rotation]   CPU seconds during the rotation: ${Object.entries(cpu).map(([name, s]) => `${name} ${s}`).join(', ')}`,
        `[bench:rotation]   results: ${join(dir, 'results.json')}`,
      ].join('\n') + '\n',
    );
  } finally {
    await worker.stop(15_000);
    await connection.close();
    await pool?.end();
    await Promise.all([simulator.stop(), temporal.stop(), vault.stop(), postgres?.stop()]);
  }
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
      if (ciphertext) entries.push({ userId, pairId: pair.id, ciphertext, expectedSha256: sha256(sharePlaintext({ id: pair.id, share: pair.share })) });
    }
  }
  return entries;
}

async function countDecrypting(transit: VaultTransit, entries: { userId: string; pairId: string; ciphertext: string; expectedSha256: string }[]): Promise<number> {
  let count = 0;
  for (let i = 0; i < entries.length; i += 250) {
    const slice = entries.slice(i, i + 250);
    const opened = await transit.decryptEach(slice.map((e) => ({ ciphertext: e.ciphertext, context: transitContext(e.userId, e.pairId) })));
    opened.forEach((result, index) => {
      if ('plaintext' in result && sha256(result.plaintext) === slice[index]!.expectedSha256) count += 1;
    });
  }
  return count;
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench:rotation] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
