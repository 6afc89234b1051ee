import { parseOptions } from '../command-line/options';
import { startPortalSimulator } from './portal-simulator';

/** Runs the Portal simulator on its own, e.g. `npm run simulator -- --port 4100 --users 5`. */
const opts = parseOptions('portal-simulator', {
  host: { flag: '--host <host>', description: 'address to listen on (keep it on loopback)', default: '127.0.0.1' },
  port: { flag: '--port <port>', description: 'port to listen on', default: '4100', number: true },
  users: { flag: '--users <count>', description: 'seed this many users named user-1, user-2, …', default: '3', number: true },
  seed: { flag: '--seed <number>', description: 'seed for fault-injection randomness', default: '1', number: true },
  latencyMs: { flag: '--latency-ms <ms>', description: 'added latency on every Portal route', default: '0', number: true },
  enclaveRpm: { flag: '--enclave-rpm <n>', description: "Enclave MPC API rate limit, requests per minute (Portal's is 50; off if unset)", number: true },
  clientRpm: { flag: '--client-rpm <n>', description: "client routes' rate limit, requests per minute (Portal's is 200; off if unset)", number: true },
  openAdmin: {
    flag: '--open-admin',
    description: 'let non-loopback callers use the admin API (dangerous: anyone who reaches it can read every user, inject faults and revoke keys)',
  },
  webhookUrl: { flag: '--webhook-url <url>', description: 'Self-Managed Backups: base URL of the custodian-share webhook (Portal-Managed if unset)' },
  webhookSecret: {
    flag: '--webhook-secret <secret>',
    description: 'X-Webhook-Secret sent to the webhook (visible to other local users in the process list: prefer SIMULATOR_WEBHOOK_SECRET)',
  },
  webhookTimeoutMs: { flag: '--webhook-timeout-ms <ms>', description: "budget of each call to the webhook (Portal's is 10000)", number: true },
  webhookBackupMethod: { flag: '--webhook-backup-method <method>', description: 'backupMethod sent to the webhook', default: 'UNKNOWN' },
  acceptWebhook204: { flag: '--accept-webhook-204', description: 'count a 204 from the webhook as success (default: only 200)' },
  openBackend: {
    flag: '--open-backend',
    description: "let non-loopback callers use the /backend routes (dangerous: they hand out users' API keys and signing shares)",
  },
});

async function main(): Promise<void> {
  const webhookSecret = opts.webhookSecret ?? process.env.SIMULATOR_WEBHOOK_SECRET;
  if (!opts.webhookUrl && (opts.webhookSecret || opts.webhookTimeoutMs !== undefined)) {
    throw new Error('--webhook-secret and --webhook-timeout-ms need --webhook-url');
  }
  if (opts.webhookUrl && !webhookSecret) throw new Error('--webhook-url needs --webhook-secret or SIMULATOR_WEBHOOK_SECRET');
  const selfManaged = opts.webhookUrl
    ? {
        webhookUrl: opts.webhookUrl,
        webhookSecret: webhookSecret!,
        ...(opts.webhookTimeoutMs !== undefined ? { timeoutMs: opts.webhookTimeoutMs } : {}),
      }
    : undefined;
  const rateLimits =
    opts.enclaveRpm !== undefined || opts.clientRpm !== undefined
      ? { enclavePerMinute: opts.enclaveRpm ?? 1e9, clientPerMinute: opts.clientRpm ?? 1e9 }
      : undefined;
  const simulator = await startPortalSimulator({
    host: opts.host,
    port: opts.port,
    seed: opts.seed,
    openAdmin: opts.openAdmin,
    openBackend: opts.openBackend,
    ...(rateLimits ? { rateLimits } : {}),
    ...(selfManaged ? { selfManaged } : {}),
    webhookBackupMethod: opts.webhookBackupMethod,
    acceptWebhook204: opts.acceptWebhook204,
  });
  const { latencyMs } = opts;
  if (latencyMs > 0) {
    for (const route of ['backup', 'storeCipherText', 'getCipherText', 'markPairs', 'getClient', 'recover'] as const) {
      simulator.faults.add({ route, kind: 'latency', latencyMs });
    }
  }
  for (let i = 1; i <= opts.users; i++) simulator.state.seedUser(`user-${i}`);
  process.stdout.write(`Portal simulator on ${simulator.url} with ${opts.users} users (user-1 … user-${opts.users})\n`);
  // The secret is never printed.
  process.stdout.write(
    selfManaged
      ? `Self-Managed Backups: custodian shares go to ${selfManaged.webhookUrl} (budget ${selfManaged.timeoutMs ?? 10_000} ms per call)\n`
      : 'Portal-Managed Backups (no webhook)\n',
  );
  for (const [open, what] of [[opts.openAdmin, 'admin API'], [opts.openBackend, '/backend routes']] as const) {
    if (open) process.stdout.write(`warning: the ${what} answer non-loopback callers\n`);
  }
  const stop = () => void simulator.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`portal simulator failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
