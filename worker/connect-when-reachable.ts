import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';

const FIRST_WAIT_MS = 1_000;
const MAX_WAIT_MS = 30_000;

/**
 * Connects the worker to Temporal, waiting out a frontend that is down or not up yet (a worker
 * started before Temporal, or restarted during its outage) with backoff, as the database's
 * migration does (db/migrate-when-reachable.ts): the worker comes up when Temporal does instead of
 * exiting. Only a transport failure (nothing answered) is waited out; any other error (a TLS or
 * option problem) is thrown at once. SIGTERM while waiting ends the process as usual.
 */
export async function connectWhenReachable(
  options: NativeConnectionOptions,
  warn: (message: string) => void,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  connect: (options: NativeConnectionOptions) => Promise<NativeConnection> = (o) => NativeConnection.connect(o),
): Promise<NativeConnection> {
  for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
    try {
      return await connect(options);
    } catch (error) {
      // The SDK's TransportError (deprecated as an export, so matched by name).
      if (!(error instanceof Error && error.name === 'TransportError')) throw error;
      warn(`Temporal at ${options.address ?? 'its default address'} cannot be reached (${error.message.slice(0, 200)}); trying again in ${Math.round(wait / 1000)} s`);
      await sleep(wait);
    }
  }
}
