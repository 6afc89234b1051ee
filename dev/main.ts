import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { devStackFile } from '../config/dev-stack-files';
import { join } from 'node:path';
import {
  checkPortsFree,
  connectClient,
  DEV_DIR,
  devRecoveries,
  seedDevOperators,
  log,
  shown,
  startCompanyDatabase,
  startApi,
  startCodecServer,
  startKms,
  startSelfManaged,
  startSimulator,
  startTemporalAndVault,
  startWorker,
  writeAuditorEnv,
  type SelfManagedParts,
  type Stops,
} from './dev-stack';
import { devPorts, parseDevOptions, type DevOptions, type DevPorts } from './options';

/**
 * The local default stack in one command: Temporal (with its Web UI), Vault with Transit, the
 * Portal simulator with seeded users, and a worker; then one demo backup. Ctrl-C stops it all.
 */
const opts = parseDevOptions();

async function main(): Promise<void> {
  const ports = devPorts(opts);
  if (opts.kms !== 'vault-transit' && opts.kms !== 'aws-kms') throw new Error(`--kms must be vault-transit or aws-kms, not ${opts.kms}`);
  await checkPortsFree(ports);
  mkdirSync(DEV_DIR, { recursive: true });
  const stops: Stops = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(0)));

  try {
    const stack = await startDevStack(opts, ports, stops);
    printStack(stack, ports);
    await runDemo(stack);
    if (opts.once) {
      await stopAll();
      return;
    }
    printTryThis(stack, ports);
    await new Promise(() => undefined);
  } catch (error) {
    await stopAll();
    throw error;
  }
}

type DevStack = Awaited<ReturnType<typeof startDevStack>>;

/** Every part, in the order each needs the one before: servers, KMS, database, self-managed parts, simulator, codec server, worker, client, API. */
async function startDevStack(opts: DevOptions, ports: DevPorts, stops: Stops) {
  const { temporal, vault } = await startTemporalAndVault(opts, ports, stops);
  const kms = await startKms(opts, ports, vault, stops);
  const databaseUrl = await startCompanyDatabase(stops);
  const auditEnvFile = await writeAuditorEnv(vault, databaseUrl);
  const selfManaged: SelfManagedParts | undefined = opts.selfManaged ? await startSelfManaged(ports, kms.env, databaseUrl, stops) : undefined;
  const { simulator, userIds } = await startSimulator(ports, selfManaged, opts.users, stops);
  const operators = await seedDevOperators(vault);
  // The dev stack's own codec key; the CLI reads it from this file (never printed). The CLI acts as
  // ops-carol (her own Vault token signs); another operator: OPERATOR_NAME and VAULT_TOKEN in the shell win.
  const clientEnv = {
    TEMPORAL_ADDRESS: temporal.address,
    PAYLOAD_CODEC_KEYS: `dev-1:${randomBytes(32).toString('base64')}`,
    OPERATOR_NAME: 'ops-carol',
    VAULT_ADDR: vault.addr,
    VAULT_TOKEN: operators.tokens['ops-carol']!,
  };
  await startCodecServer(ports, clientEnv.PAYLOAD_CODEC_KEYS, stops);
  // The CLI's file: Temporal, the codec key, ops-carol's identity, and the company database (eject collect reads its release there).
  const cliEnv = { ...clientEnv, DATABASE_URL: databaseUrl };
  writeFileSync(devStackFile('clientEnv'), Object.entries(cliEnv).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 });
  const workerClientEnv = { TEMPORAL_ADDRESS: clientEnv.TEMPORAL_ADDRESS, PAYLOAD_CODEC_KEYS: clientEnv.PAYLOAD_CODEC_KEYS };
  const worker = startWorker({ clientEnv: workerClientEnv, simulator, kmsEnv: kms.env, ports, selfManaged, vault, databaseUrl }, stops);
  const backups = await connectClient(workerClientEnv, worker, stops);
  const apiTokenFile = await startApi(backups, ports, stops, operators);
  return { temporal, kmsLine: kms.line, selfManaged, simulator, userIds, backups, apiTokenFile, operators, auditEnvFile };
}

function printStack(stack: DevStack, ports: DevPorts): void {
  const { temporal, simulator, selfManaged } = stack;
  log(`Temporal Web UI      ${temporal.uiUrl}`);
  log(`Temporal gRPC        ${temporal.address}`);
  log(`codec server         http://127.0.0.1:${ports.codec}  (the UI decodes through it; shares stay sealed)`);
  log(stack.kmsLine);
  log(`HTTP API             http://127.0.0.1:${ports.api}  (OpenAPI: /openapi.json; bearer token in ${shown(stack.apiTokenFile)})`);
  log(`metrics              http://127.0.0.1:${ports.metrics}/metrics (service), http://127.0.0.1:${ports.temporalMetrics}/metrics (Temporal runtime)`);
  log(`Portal simulator     ${simulator.url}  users: ${stack.userIds.join(', ')}${selfManaged ? '  (Self-Managed: delivers custodian shares to the webhook)' : ''}`);
  log(`logs                 ${shown(DEV_DIR)}`);
}

/** One backup of user-1, end to end, and where to see it. */
async function runDemo(stack: DevStack): Promise<void> {
  const { backups, temporal, simulator } = stack;
  log('demo: backing up user-1 …');
  const started = await backups.startBackupWorkflow('user-1');
  const result = await backups.waitForBackup('user-1', started.runId);
  log(`demo backup ${result.status}: pairs ${result.pairIds.SECP256K1}, ${result.pairIds.ED25519}`);
  log(`  see it in the UI: ${temporal.uiUrl}/namespaces/default/workflows/${started.workflowId}`);
  await runRecoveryDemo(stack);
  if (stack.selfManaged) {
    const delivered = simulator.webhookDeliveries.filter((d) => d.call === 'backup' && d.outcome === 'ok').length;
    log(`  custodian shares delivered to the webhook and acknowledged: ${delivered} (see ${join(DEV_DIR, 'webhook.log')})`);
  }
}

/** A recovery of user-1: requested by ops-carol, it waits for ops-alice's and ops-bob's approvals, then completes. */
async function runRecoveryDemo(stack: DevStack): Promise<void> {
  const { recoveries, as, approve } = devRecoveries(stack.operators, stack.backups);
  log('demo: ops-carol requests a recovery of user-1 …');
  const started = await recoveries.startRecovery('user-1', { freshBackup: false });
  const waiting = await approve('user-1').then(
    (approved) => approved,
    (error: unknown) => {
      throw new Error(`the demo recovery was not approved: ${(error as Error).message}`);
    },
  );
  log(`  AWAITING_APPROVAL until ${waiting.approval?.expiresAt}: approved by ${waiting.approval?.approvedBy.map((entry) => entry.operator).join(' and ')} (ops-carol could not approve her own)`);
  const result = await as('ops-carol').waitForRecovery('user-1', started.runId);
  log(`demo recovery ${result.status}: new signing pairs ${result.signingPairIds.SECP256K1}, ${result.signingPairIds.ED25519}`);
}

function printTryThis(stack: DevStack, ports: DevPorts): void {
  const { simulator } = stack;
  log('try, in another terminal:');
  log('  npm run backup:dev -- start user-2 --wait');
  log('  npm run backup:dev -- recover start user-2                # as ops-carol; it waits for two approvals');
  log(`  OPERATOR_NAME=ops-alice VAULT_TOKEN=$(cat ${shown(join(DEV_DIR, 'ops-alice.vault-token'))}) npm run backup:dev -- recover approve user-2`);
  log(`  OPERATOR_NAME=ops-bob VAULT_TOKEN=$(cat ${shown(join(DEV_DIR, 'ops-bob.vault-token'))}) npm run backup:dev -- recover approve user-2`);
  log('  npm run backup:dev -- drill run --users user-1,user-2 --wait   # a restore drill');
  log('  npm run backup:dev -- eject request user-1 --reason "ticket SUP-1" --key-out user-1.key.json   # as ops-carol; two approve (eject approve), then:');
  log('  npm run backup:dev -- eject collect user-1 --key user-1.key.json --out user-1-shares.json');
  log(`  curl -s -XPOST -H "authorization: Bearer $(cat ${shown(stack.apiTokenFile)})" http://127.0.0.1:${ports.api}/v1/backups/user-4`);
  log('  npm run backup:dev -- status user-2');
  log(`  curl -s -XPOST ${simulator.url}/admin/faults -H 'content-type: application/json' \\`);
  log(`    -d '{"route":"markPairs","kind":"status","status":401,"userId":"user-3"}'`);
  log('  npm run backup:dev -- start user-3   # parks as NEEDS_ATTENTION; clear the fault, then:');
  log(`  curl -s -XDELETE ${simulator.url}/admin/faults && npm run backup:dev -- retry user-3`);
  log(`  node --env-file=${stack.auditEnvFile} --import tsx client/cli.ts audit verify   # as an auditor: the chain and its Vault seals`);
  log(`  node --env-file=${stack.auditEnvFile} --import tsx client/cli.ts audit list --user user-3`);
  log('Ctrl-C stops everything.');
}

main().catch((error: unknown) => {
  process.stderr.write(`dev stack failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
