import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import { realSleep, untilReachable, type Sleep } from '../domain/until-reachable';

/**
 * Connects the worker to Temporal, waiting out a frontend that is down or not up yet (a worker
 * started before Temporal, or restarted during its outage) as the database's migration does: the
 * worker comes up when Temporal does instead of exiting. Only a transport failure (nothing
 * answered; the SDK's TransportError, deprecated as an export, so matched by name) is waited out;
 * any other error (a TLS or option problem) is thrown at once. SIGTERM while waiting ends the
 * process as usual.
 */
export function connectWhenReachable(
  options: NativeConnectionOptions,
  warn: (message: string) => void,
  sleep: Sleep = realSleep,
  connect: (options: NativeConnectionOptions) => Promise<NativeConnection> = (o) => NativeConnection.connect(o),
): Promise<NativeConnection> {
  return untilReachable(() => connect(options), {
    transient: (error) => error instanceof Error && error.name === 'TransportError',
    describe: (error) => `Temporal at ${options.address ?? 'its default address'} cannot be reached (${(error as Error).message.slice(0, 200)})`,
    warn,
    sleep,
  });
}
