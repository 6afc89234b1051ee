import type { ManagedProcess } from './managed-process';

/** A server the tests and the fault campaign can crash and bring back: SIGKILL, then the same launch. */
export interface Restartable {
  process: ManagedProcess;
  /** SIGKILL, then launch again the same way (same ports, same data directory or file). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Launches a server (`launch` returns once it is ready) and gives `fields` the process with
 * `restart` and `stop`. The returned object is the one `restart` updates: keep it, do not spread it.
 */
export async function launchRestartable<T extends object>(fields: T, launch: () => Promise<ManagedProcess>): Promise<T & Restartable> {
  const server: T & Restartable = {
    ...fields,
    process: await launch(),
    async restart() {
      await server.process.kill();
      server.process = await launch();
    },
    stop: () => server.process.stop(),
  };
  return server;
}
