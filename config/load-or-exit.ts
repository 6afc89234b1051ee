import { ConfigError } from './config-error';

/**
 * Runs a process's configuration loader; on a ConfigError prints every problem under the process's
 * name and exits 2 (bad configuration), so no process starts half-configured.
 */
export function loadOrExit<T>(processName: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${processName}: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
