import './promise-with-resolvers';
import * as restate from '@restatedev/restate-sdk';
import { restateBackupWorkflow, StepAttemptLog } from './restate-backup';
import { peerStepDepsFromEnv, requiredEnv } from './peer-steps';

/**
 * The Restate peer's service process: the backup workflow as a Restate service endpoint (HTTP/2)
 * on RESTATE_SERVICE_PORT, on the same simulator and Vault as ours. The Restate server invokes it;
 * started (and SIGKILLed, and started again on the same port) by the benchmark and its crash
 * check, after which the server retries the invocations it had in flight and the journal replays.
 */
async function main(): Promise<void> {
  const port = Number(requiredEnv('RESTATE_SERVICE_PORT'));
  const attempts = await StepAttemptLog.open(requiredEnv('RESTATE_PEER_ATTEMPTS_FILE'));
  const bound = await restate.serve({ services: [restateBackupWorkflow(peerStepDepsFromEnv(), attempts)], port });
  process.stdout.write(`restate peer ready on port ${bound}\n`);
  const stop = () => void attempts.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`restate peer failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
