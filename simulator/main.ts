import { Command } from 'commander';
import { startPortalSimulator } from './portal-simulator';

/** Runs the Portal simulator on its own, e.g. `npm run simulator -- --port 4100 --users 5`. */
const program = new Command('portal-simulator')
  .option('--host <host>', 'address to listen on (keep it on loopback)', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '4100')
  .option('--users <count>', 'seed this many users named user-1, user-2, …', '3')
  .option('--seed <number>', 'seed for fault-injection randomness', '1')
  .option('--latency-ms <ms>', 'added latency on every Portal route', '0')
  .option('--enclave-rpm <n>', "Enclave MPC API rate limit, requests per minute (Portal's is 50; off if unset)")
  .option('--client-rpm <n>', "client routes' rate limit, requests per minute (Portal's is 200; off if unset)")
  .option(
    '--open-admin',
    'let non-loopback callers use the admin API (dangerous: anyone who reaches it can read every user, inject faults and revoke keys)',
  )
  .option('--webhook-url <url>', 'Self-Managed Backups: base URL of the custodian-share webhook (Portal-Managed if unset)')
  .option(
    '--webhook-secret <secret>',
    'X-Webhook-Secret sent to the webhook (visible to other local users in the process list: prefer SIMULATOR_WEBHOOK_SECRET)',
  )
  .option('--webhook-timeout-ms <ms>', "budget of each call to the webhook (Portal's is 10000)")
  .option('--webhook-backup-method <method>', 'backupMethod sent to the webhook', 'UNKNOWN')
  .option('--accept-webhook-204', 'count a 204 from the webhook as success (default: only 200)')
  .option(
    '--open-backend',
    "let non-loopback callers use the /backend routes (dangerous: they hand out users' API keys and signing shares)",
  )
  .parse();

async function main(): Promise<void> {
  const opts = program.opts<{
    host: string;
    port: string;
    users: string;
    seed: string;
    latencyMs: string;
    enclaveRpm?: string;
    clientRpm?: string;
    openAdmin?: boolean;
    openBackend?: boolean;
    webhookUrl?: string;
    webhookSecret?: string;
    webhookTimeoutMs?: string;
    webhookBackupMethod: string;
    acceptWebhook204?: boolean;
  }>();
  const webhookSecret = opts.webhookSecret ?? process.env.SIMULATOR_WEBHOOK_SECRET;
  if (!opts.webhookUrl && (opts.webhookSecret || opts.webhookTimeoutMs)) {
    throw new Error('--webhook-secret and --webhook-timeout-ms need --webhook-url');
  }
  if (opts.webhookUrl && !webhookSecret) throw new Error('--webhook-url needs --webhook-secret or SIMULATOR_WEBHOOK_SECRET');
  const selfManaged = opts.webhookUrl
    ? {
        webhookUrl: opts.webhookUrl,
        webhookSecret: webhookSecret!,
        ...(opts.webhookTimeoutMs ? { timeoutMs: Number(opts.webhookTimeoutMs) } : {}),
      }
    : undefined;
  const rateLimits =
    opts.enclaveRpm || opts.clientRpm
      ? { enclavePerMinute: Number(opts.enclaveRpm ?? 1e9), clientPerMinute: Number(opts.clientRpm ?? 1e9) }
      : undefined;
  const simulator = await startPortalSimulator({
    host: opts.host,
    port: Number(opts.port),
    seed: Number(opts.seed),
    openAdmin: opts.openAdmin ?? false,
    openBackend: opts.openBackend ?? false,
    ...(rateLimits ? { rateLimits } : {}),
    ...(selfManaged ? { selfManaged } : {}),
    webhookBackupMethod: opts.webhookBackupMethod,
    acceptWebhook204: opts.acceptWebhook204 ?? false,
  });
  const latencyMs = Number(opts.latencyMs);
  if (latencyMs > 0) {
    for (const route of ['backup', 'storeCipherText', 'getCipherText', 'markPairs', 'getClient', 'recover'] as const) {
      simulator.faults.add({ route, kind: 'latency', latencyMs });
    }
  }
  for (let i = 1; i <= Number(opts.users); i++) simulator.state.seedUser(`user-${i}`);
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
