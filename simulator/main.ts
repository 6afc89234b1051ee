import { Command } from 'commander';
import { startPortalSimulator } from './portal-simulator';

/** Runs the Portal simulator on its own, e.g. `npm run simulator -- --port 4100 --users 5`. */
const program = new Command('portal-simulator')
  .option('--host <host>', 'address to listen on (keep it on loopback)', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '4100')
  .option('--users <count>', 'seed this many users named user-1, user-2, …', '3')
  .option('--seed <number>', 'seed for fault-injection randomness', '1')
  .parse();

async function main(): Promise<void> {
  const opts = program.opts<{ host: string; port: string; users: string; seed: string }>();
  const simulator = await startPortalSimulator({ host: opts.host, port: Number(opts.port), seed: Number(opts.seed) });
  for (let i = 1; i <= Number(opts.users); i++) simulator.state.seedUser(`user-${i}`);
  process.stdout.write(`Portal simulator on ${simulator.url} with ${opts.users} users (user-1 … user-${opts.users})\n`);
  const stop = () => void simulator.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`portal simulator failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
