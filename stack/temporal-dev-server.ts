import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../contracts/backup-wallet-api';
import { freePortBelow32768 } from './free-port';
import { startProcess, waitUntil } from './managed-process';
import { launchRestartable, type Restartable } from './restartable-server';
import { toolBinary } from './tool-binaries';

/** `restart` starts the server again on the same ports (and database file, if any). */
export interface TemporalDevServer extends Restartable {
  address: string;
  port: number;
  uiUrl?: string;
  namespace: string;
}

export interface TemporalDevServerOptions {
  logFile: string;
  port?: number;
  /** Web UI port; omit for a headless server. */
  uiPort?: number;
  /** Persist to this SQLite file (survives restarts); in memory otherwise. */
  dbFile?: string;
  namespace?: string;
  /** The codec server the Web UI calls to show payloads decoded (`--ui-codec-endpoint`). */
  uiCodecEndpoint?: string;
  /**
   * The server's eager activity execution (`system.enableActivityEagerExecution`): a worker that
   * completes a workflow task gets the activity it scheduled on its own task queue back in the
   * answer, instead of through matching and a poll. On by default here (dev, tests, bench), as
   * Temporal Cloud has it; a self-hosted production cluster sets it in its dynamic config.
   */
  eagerActivityExecution?: boolean;
  /**
   * Eager workflow start (`system.enableEagerWorkflowStart`): a client that shares its
   * NativeConnection with a worker of the task queue gets the first workflow task in the answer to
   * its start call (BackupClient's `eagerStart`). On by default here; off in the server's defaults.
   */
  eagerWorkflowStart?: boolean;
  /**
   * How often per second the history service's transfer-queue reader may look for new tasks
   * (`history.transferProcessorMaxPollRPS`, server default 20). Every workflow task after an
   * activity completes goes through that queue; at 20 reads a second, a task made within 50 ms of
   * the previous read waits for the next one (30–40 ms per step when activities are fast: 150 of a
   * backup's 250 ms one at a time). 1000 here; a production cluster weighs it against its
   * database's load (docs/performance.md).
   */
  transferQueueMaxPollRps?: number;
  /** More dynamic-config values (`--dynamic-config-value key=value`, the value as JSON). */
  dynamicConfig?: Record<string, string | number | boolean>;
}

/** The dev server's dynamic config by default: the values ops/temporal/dynamic-config.yaml gives a cluster. */
export const DEV_DYNAMIC_CONFIG: Readonly<Record<string, string | number | boolean>> = {
  'system.enableActivityEagerExecution': true,
  'system.enableEagerWorkflowStart': true,
  'history.transferProcessorMaxPollRPS': 1000,
  // The dev server's own default already; written out so that the cluster gets the same.
  'frontend.namespaceRPS.visibility': 100,
  // Task-queue priority keys (contracts/run-priority.ts): interactive backups are dispatched ahead
  // of a batch's children; the classic matcher ignores priorities.
  'matching.useNewMatcher': true,
};

/** `temporal server start-dev` (CLI v1.5.1, server 1.29.1) with the backup's search attributes. */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const binary = toolBinary('temporal');
  // Below the kernel's range for outgoing connections (freePortBelow32768): a port picked from
  // that range can be taken by a connection before the server binds it, or before a restart does.
  const port = options.port ?? (await freePortBelow32768());
  const httpPort = await freePortBelow32768();
  const metricsPort = await freePortBelow32768();
  const namespace = options.namespace ?? 'default';
  const dynamicConfig = {
    ...DEV_DYNAMIC_CONFIG,
    ...(options.eagerActivityExecution !== undefined ? { 'system.enableActivityEagerExecution': options.eagerActivityExecution } : {}),
    ...(options.eagerWorkflowStart !== undefined ? { 'system.enableEagerWorkflowStart': options.eagerWorkflowStart } : {}),
    ...(options.transferQueueMaxPollRps !== undefined ? { 'history.transferProcessorMaxPollRPS': options.transferQueueMaxPollRps } : {}),
    ...options.dynamicConfig,
  };
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]),
    ...(options.uiPort ? ['--ui-port', String(options.uiPort), '--ui-ip', '127.0.0.1'] : ['--headless']),
    ...(options.uiPort && options.uiCodecEndpoint ? ['--ui-codec-endpoint', options.uiCodecEndpoint] : []),
    ...(options.dbFile ? ['--db-filename', options.dbFile] : []),
    ...Object.entries(dynamicConfig).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]),
  ];
  const address = `127.0.0.1:${port}`;

  const launch = async () => {
    const proc = startProcess('temporal', binary, args, { logFile: options.logFile });
    await waitUntil(
      `Temporal dev server on ${address}`,
      async () => {
        const connection = await Connection.connect({ address, connectTimeout: 1_000 });
        try {
          await connection.workflowService.describeNamespace({ namespace });
          return true;
        } finally {
          await connection.close();
        }
      },
      90_000,
      proc.exited,
    );
    if (options.uiPort) {
      // The Web UI is served by the same process but starts on its own; a browser needs it up.
      const uiUrl = `http://127.0.0.1:${options.uiPort}`;
      await waitUntil(`Temporal Web UI on ${uiUrl}`, async () => (await fetch(uiUrl, { signal: AbortSignal.timeout(2_000) })).ok, 30_000, proc.exited);
    }
    return proc;
  };

  return launchRestartable({ address, port, namespace, ...(options.uiPort ? { uiUrl: `http://127.0.0.1:${options.uiPort}` } : {}) }, launch);
}
