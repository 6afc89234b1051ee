import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import { Client as PgClient } from 'pg';
import { parseDatabaseUrl } from '../db/database-url';
import { SEARCH_ATTRIBUTES } from '../contracts/backup-wallet-api';
import { freePortBelow32768 } from './free-port';
import { startProcess, waitUntil, type ManagedProcess } from './managed-process';
import { startPostgresServer, type PostgresServer } from './postgres-server';
import { temporalServerBinary, temporalServerVersions } from './tool-binaries';

const ROOT = join(__dirname, '..');

/** The four services of a Temporal cluster, in the order they are started. */
export const TEMPORAL_SERVICES = ['frontend', 'history', 'matching', 'worker'] as const;
export type TemporalServiceName = (typeof TEMPORAL_SERVICES)[number];

/**
 * How long Temporal keeps a closed run. At least 24 hours: an idempotency key is looked up among
 * the runs of the last 24 hours (README, "Using it"); a week leaves time to look at failed backups.
 * docker-compose.yml registers its namespace with the same (test/unit/docker-compose.test.ts).
 */
export const NAMESPACE_RETENTION_HOURS = 168;

/** Where the cluster's server settings and dynamic config live (docker-compose.yml reads the same files). */
export const CLUSTER_ENV_FILE = join(ROOT, 'ops', 'temporal', 'cluster.env');
export const DYNAMIC_CONFIG_FILE = join(ROOT, 'ops', 'temporal', 'dynamic-config.yaml');

/**
 * The schema steps of temporal-sql-tool, per database (the schemas are embedded in the tool):
 * `setup-schema -v 0.0` (the version tables; a no-op once done), then `update-schema` to the newest
 * version of the named schema (applies only the versions the database lacks, so a newer server
 * version's migrations run by the same two steps). docker-compose.yml runs the same steps.
 */
export const SCHEMA_STEPS = [
  { database: 'temporal', schemaName: 'postgresql/v12/temporal' },
  { database: 'temporal_visibility', schemaName: 'postgresql/v12/visibility' },
] as const;

/** The role our own Temporal PostgreSQL creates; it owns both databases and is no superuser. */
const TEMPORAL_ROLE = 'temporal';

/** KEY=VALUE lines of ops/temporal/cluster.env (comments and blank lines skipped). */
export function readClusterEnv(file = CLUSTER_ENV_FILE): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(trimmed);
    if (!match) throw new Error(`${file}: not KEY=VALUE: ${trimmed}`);
    entries[match[1]!] = match[2]!;
  }
  return entries;
}

export interface TemporalServiceProcess {
  name: TemporalServiceName;
  grpcPort: number;
  membershipPort: number;
  /** Prometheus metrics of this service (`/metrics`). */
  metricsPort: number;
  logFile: string;
  /** The running process (replaced by each start). */
  process: ManagedProcess;
}

export interface TemporalCluster {
  /** The frontend's gRPC address, what clients and workers connect to. */
  address: string;
  port: number;
  namespace: string;
  uiUrl?: string;
  serverVersion: string;
  historyShards: number;
  services: Record<TemporalServiceName, TemporalServiceProcess>;
  /** Temporal's own PostgreSQL (not the company's): ours to kill, or TEMPORAL_DATABASE_URL's. */
  postgres: PostgresServer;
  /** SIGKILL one service, as a crash would; `start` brings it back on the same ports. */
  kill(service: TemporalServiceName): Promise<void>;
  /** Starts a killed service again and waits until the cluster serves. */
  start(service: TemporalServiceName): Promise<void>;
  /** Waits until the frontend answers, the namespace is there, and history and matching serve it. */
  waitReady(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface TemporalClusterOptions {
  /** Logs and the rendered UI configuration go here. */
  runDir: string;
  namespace?: string;
  /** The frontend's gRPC port (a free one otherwise). */
  port?: number;
  /** Web UI port; omit for none. */
  uiPort?: number;
  /** The codec server the Web UI decodes payloads through. */
  uiCodecEndpoint?: string;
  /** Keep Temporal's PostgreSQL here across runs (a fresh folder under os.tmpdir() otherwise). */
  postgresDataDir?: string;
  /** Whether TEMPORAL_DATABASE_URL may be used (default true); the fault campaign needs its own server to kill. */
  allowExternalDatabase?: boolean;
  /** The services' log level (default warn). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

const READY_TIMEOUT_MS = 180_000;

/**
 * A Temporal cluster as production runs it: temporal-server (pinned in
 * scripts/tool-temporal-server.sh) as four processes — frontend, history, matching, worker — on
 * PostgreSQL, with the server's embedded configuration template filled from environment variables
 * (ops/temporal/cluster.env, the ports, the database), the dynamic config of
 * ops/temporal/dynamic-config.yaml, the namespace registered with its retention and the backup's
 * search attributes, and optionally the Web UI server with the codec server.
 *
 * Start order: the schema first (temporal-sql-tool), then the frontend alone (the first process
 * on an empty database writes the cluster metadata; several at once crash with "failed to
 * initialize current cluster metadata"), the namespace and search attributes through it, then
 * history, matching and worker one after the other, each loading the namespace as registered.
 */
export async function startTemporalCluster(options: TemporalClusterOptions): Promise<TemporalCluster> {
  const { runDir } = options;
  mkdirSync(runDir, { recursive: true });
  const namespace = options.namespace ?? 'default';
  const serverBinary = temporalServerBinary('server');
  const sqlTool = temporalServerBinary('sql');
  const uiBinary = options.uiPort ? temporalServerBinary('ui') : undefined;
  const clusterEnv = readClusterEnv();
  const historyShards = Number(clusterEnv.NUM_HISTORY_SHARDS);

  const postgres = await startTemporalPostgres(options);
  const processes: ManagedProcess[] = [];
  let ui: ManagedProcess | undefined;
  const stopAll = async () => {
    await ui?.stop(5_000);
    // Workers and matching first, the frontend last: nothing is left talking to a gone frontend.
    for (const name of [...TEMPORAL_SERVICES].reverse()) await services?.[name]?.process.stop(10_000);
    await Promise.all(processes.map((p) => p.stop(1_000)));
    if (postgres.kind !== 'external') await postgres.stop();
  };
  let services: Record<TemporalServiceName, TemporalServiceProcess> | undefined;

  try {
    const db = databaseLogin(postgres.url);
    await createMissingDatabases(postgres, sqlTool, runDir);
    await setUpSchemas(sqlTool, db, join(runDir, 'temporal-sql-tool.log'));

    const { port, frontendHttpPort, allPorts } = await clusterPorts(options.port);
    const baseEnv = serviceEnv({ clusterEnv, db, allPorts, frontendHttpPort, logLevel: options.logLevel ?? 'warn' });
    const launch = (name: TemporalServiceName): ManagedProcess => {
      const logFile = join(runDir, `temporal-${name}.log`);
      const child = startProcess(`temporal-${name}`, serverBinary, ['start', '--service', name], {
        logFile,
        env: { ...baseEnv, PROMETHEUS_ENDPOINT: `127.0.0.1:${allPorts[name].metricsPort}` },
        cwd: runDir,
      });
      processes.push(child);
      return child;
    };
    services = Object.fromEntries(
      TEMPORAL_SERVICES.map((name) => [name, { name, ...allPorts[name], logFile: join(runDir, `temporal-${name}.log`), process: undefined as unknown as ManagedProcess }]),
    ) as Record<TemporalServiceName, TemporalServiceProcess>;
    const address = `127.0.0.1:${port}`;

    const startService = async (name: TemporalServiceName) => {
      const service = services![name];
      service.process = launch(name);
      await waitUntil(`Temporal ${name} listening on 127.0.0.1:${service.grpcPort}`, () => tcpOpen(service.grpcPort), READY_TIMEOUT_MS, service.process.exited);
    };

    await startService('frontend');
    const connection = await waitForConnection(address, services.frontend.process.exited);
    try {
      await registerNamespace(connection, namespace);
      for (const name of ['history', 'matching', 'worker'] as const) await startService(name);
      await clusterServesWhileAllRun(connection, namespace, services);
    } finally {
      await connection.close();
    }

    let uiUrl: string | undefined;
    if (uiBinary && options.uiPort) {
      uiUrl = `http://127.0.0.1:${options.uiPort}`;
      ui = startUiServer(uiBinary, runDir, { address, uiPort: options.uiPort, namespace, codecEndpoint: options.uiCodecEndpoint });
      const uiProcess = ui;
      await waitUntil(`Temporal Web UI on ${uiUrl}`, async () => (await fetch(uiUrl!, { signal: AbortSignal.timeout(2_000) })).ok, 60_000, uiProcess.exited);
    }

    const versions = temporalServerVersions();
    const cluster: TemporalCluster = {
      address,
      port,
      namespace,
      ...(uiUrl ? { uiUrl } : {}),
      serverVersion: versions.server,
      historyShards,
      services,
      postgres,
      async kill(name) {
        await services![name].process.kill();
      },
      async start(name) {
        await startService(name);
        await cluster.waitReady();
      },
      async waitReady(timeoutMs = READY_TIMEOUT_MS) {
        const probe = await waitForConnection(address, undefined, timeoutMs);
        try {
          await clusterServes(probe, namespace, timeoutMs);
        } finally {
          await probe.close();
        }
      },
      stop: stopAll,
    };
    return cluster;
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}

type ServicePorts = Record<TemporalServiceName, { grpcPort: number; membershipPort: number; metricsPort: number }>;

/**
 * Every port below 32768: membership ports are kept in a SMALLINT column of cluster_membership
 * (a port above 32767 stops the service at start), and none of them is in the kernel's range for
 * outgoing connections, which could take a killed service's port before it starts again.
 */
async function clusterPorts(frontendPort: number | undefined): Promise<{ port: number; frontendHttpPort: number; allPorts: ServicePorts }> {
  const port = frontendPort ?? (await freePortBelow32768());
  const ports = async (name: TemporalServiceName) => ({
    grpcPort: name === 'frontend' ? port : await freePortBelow32768(),
    membershipPort: await freePortBelow32768(),
    metricsPort: await freePortBelow32768(),
  });
  const frontendHttpPort = await freePortBelow32768();
  const allPorts = {} as ServicePorts;
  for (const name of TEMPORAL_SERVICES) allPorts[name] = await ports(name);
  return { port, frontendHttpPort, allPorts };
}

/**
 * The embedded template's variables (config_template_embedded.yaml of the server); nothing of
 * this process's environment leaks in (TEMPORAL_CONFIG_DIR etc. would switch to a config dir).
 */
function serviceEnv(settings: {
  clusterEnv: Record<string, string>;
  db: DatabaseLogin;
  allPorts: ServicePorts;
  frontendHttpPort: number;
  logLevel: string;
}): NodeJS.ProcessEnv {
  const { db, allPorts } = settings;
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...settings.clusterEnv,
    POSTGRES_SEEDS: db.host,
    DB_PORT: String(db.port),
    POSTGRES_USER: db.user,
    POSTGRES_PWD: db.password,
    DBNAME: SCHEMA_STEPS[0].database,
    VISIBILITY_DBNAME: SCHEMA_STEPS[1].database,
    BIND_ON_IP: '127.0.0.1',
    FRONTEND_GRPC_PORT: String(allPorts.frontend.grpcPort),
    FRONTEND_HTTP_PORT: String(settings.frontendHttpPort),
    FRONTEND_MEMBERSHIP_PORT: String(allPorts.frontend.membershipPort),
    HISTORY_GRPC_PORT: String(allPorts.history.grpcPort),
    HISTORY_MEMBERSHIP_PORT: String(allPorts.history.membershipPort),
    MATCHING_GRPC_PORT: String(allPorts.matching.grpcPort),
    MATCHING_MEMBERSHIP_PORT: String(allPorts.matching.membershipPort),
    WORKER_GRPC_PORT: String(allPorts.worker.grpcPort),
    WORKER_MEMBERSHIP_PORT: String(allPorts.worker.membershipPort),
    DYNAMIC_CONFIG_FILE_PATH: DYNAMIC_CONFIG_FILE,
    LOG_LEVEL: settings.logLevel,
    // No authorizer on loopback (the dev server has none either); says so instead of warning.
    TEMPORAL_ALLOW_NO_AUTH: 'true',
  };
}

/** Temporal's own PostgreSQL (or TEMPORAL_DATABASE_URL's), with its role and the two databases. */
function startTemporalPostgres(options: TemporalClusterOptions): Promise<PostgresServer> {
  return startPostgresServer({
    logFile: join(options.runDir, 'temporal-postgres.log'),
    ...(options.postgresDataDir ? { dataDir: options.postgresDataDir } : {}),
    allowExternal: options.allowExternalDatabase ?? true,
    externalUrlVariable: 'TEMPORAL_DATABASE_URL',
    role: TEMPORAL_ROLE,
    databases: SCHEMA_STEPS.map((step) => step.database),
    // Four services with a pool each (20 + 10 visibility by default): more than PostgreSQL's 100.
    settings: { max_connections: '300' },
  });
}

/** An external server (TEMPORAL_DATABASE_URL) may lack the databases: the SQL tool creates them (the role needs CREATEDB). */
async function createMissingDatabases(postgres: PostgresServer, sqlTool: string, runDir: string): Promise<void> {
  if (postgres.kind !== 'external') return;
  const db = databaseLogin(postgres.url);
  for (const { database } of SCHEMA_STEPS) {
    const client = new PgClient({ host: db.host, port: db.port, user: db.user, password: db.password, database, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined);
    const exists = await client.connect().then(
      () => true,
      (error: { code?: string }) => {
        if (error.code === '3D000') return false;
        throw error;
      },
    );
    await client.end().catch(() => undefined);
    if (!exists) await runSqlTool(sqlTool, db, database, ['create-database', '--defaultdb', 'postgres'], join(runDir, 'temporal-sql-tool.log'));
  }
}

interface DatabaseLogin {
  host: string;
  port: number;
  user: string;
  password: string;
}

function databaseLogin(url: string): DatabaseLogin {
  const parsed = parseDatabaseUrl(url, 'TEMPORAL_DATABASE_URL');
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
}

async function setUpSchemas(sqlTool: string, db: DatabaseLogin, logFile: string): Promise<void> {
  for (const { database, schemaName } of SCHEMA_STEPS) {
    await runSqlTool(sqlTool, db, database, ['setup-schema', '-v', '0.0'], logFile);
    await runSqlTool(sqlTool, db, database, ['update-schema', '--schema-name', schemaName], logFile);
  }
}

/** One temporal-sql-tool command; the password goes in SQL_PASSWORD (never on the command line). */
async function runSqlTool(sqlTool: string, db: DatabaseLogin, database: string, command: string[], logFile: string): Promise<void> {
  const args = ['--ep', db.host, '-p', String(db.port), '-u', db.user, '--pl', 'postgres12', '--db', database, ...command];
  const child = spawn(sqlTool, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SQL_PASSWORD: db.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString('utf8');
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  writeFileSync(logFile, `--- temporal-sql-tool ${args.join(' ')} (exit ${code}) ---\n${output}\n`, { flag: 'a' });
  if (code !== 0) throw new Error(`temporal-sql-tool ${command.join(' ')} on ${database} failed (exit ${code}): ${output.trim().split('\n').slice(-3).join(' | ')}`);
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForConnection(address: string, exited?: Promise<unknown>, timeoutMs = READY_TIMEOUT_MS): Promise<Connection> {
  let connection: Connection | undefined;
  await waitUntil(
    `Temporal frontend on ${address}`,
    async () => {
      const candidate = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await candidate.workflowService.getSystemInfo({});
        connection = candidate;
        return true;
      } catch (error) {
        await candidate.close();
        throw error;
      }
    },
    timeoutMs,
    exited,
  );
  return connection!;
}

const GRPC_ALREADY_EXISTS = 6;
const GRPC_NOT_FOUND = 5;

function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** The namespace with its retention, and the backup's search attributes (each only if missing). */
async function registerNamespace(connection: Connection, namespace: string): Promise<void> {
  await waitUntil(
    `namespace ${namespace} registered`,
    async () => {
      try {
        await connection.workflowService.registerNamespace({
          namespace,
          workflowExecutionRetentionPeriod: msToTs(`${NAMESPACE_RETENTION_HOURS}h`),
        });
      } catch (error) {
        if (grpcCode(error) !== GRPC_ALREADY_EXISTS) throw error;
      }
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    },
    READY_TIMEOUT_MS,
  );
  const keyword = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await waitUntil(
    `search attributes of ${namespace}`,
    async () => {
      const existing = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !(name in (existing.customAttributes ?? {})));
      if (missing.length > 0) {
        for (const [, type] of missing) if (type !== 'Keyword') throw new Error(`search attribute type ${type} is not mapped here`);
        try {
          await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map(([name]) => [name, keyword])) });
        } catch (error) {
          if (grpcCode(error) !== GRPC_ALREADY_EXISTS) throw error;
        }
      }
      // The frontend checks a visibility query's attributes against its own view of them.
      const query = Object.keys(SEARCH_ATTRIBUTES)
        .map((name) => `${name} = 'probe'`)
        .join(' AND ');
      await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1, query });
      return true;
    },
    READY_TIMEOUT_MS,
  );
}

/**
 * The cluster serves the namespace: a run that does not exist is NOT_FOUND (history owns its shard
 * and answered), and a task queue can be described (matching answered).
 */
async function clusterServes(connection: Connection, namespace: string, timeoutMs: number, exited?: Promise<unknown>): Promise<void> {
  await waitUntil(
    'Temporal history and matching serving',
    async () => {
      try {
        await connection.workflowService.describeWorkflowExecution({ namespace, execution: { workflowId: `cluster-probe-${Date.now()}` } });
      } catch (error) {
        if (grpcCode(error) !== GRPC_NOT_FOUND) throw error;
      }
      await connection.workflowService.describeTaskQueue({ namespace, taskQueue: { name: 'cluster-probe' } });
      return true;
    },
    timeoutMs,
    exited,
  );
}

/**
 * clusterServes, failing as soon as any service exits, with the service and the end of its log: a
 * service that dies at start (a port taken, a bad setting) is named at once, instead of the
 * readiness check waiting out its timeout on "Not enough hosts to serve the request".
 */
async function clusterServesWhileAllRun(connection: Connection, namespace: string, services: Record<TemporalServiceName, TemporalServiceProcess>): Promise<void> {
  let gone: TemporalServiceName | undefined;
  const anyExited = Promise.race(TEMPORAL_SERVICES.map((name) => services[name].process.exited.then(() => (gone ??= name))));
  try {
    await clusterServes(connection, namespace, READY_TIMEOUT_MS, anyExited);
  } catch (error) {
    if (!gone) throw error;
    throw new Error(`Temporal ${gone} exited while the cluster was starting; the end of ${services[gone].logFile}:\n${logTail(services[gone].logFile)}`);
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-5).join('\n').slice(-2_000);
  } catch {
    return '(no log)';
  }
}

/** The Web UI server (the same UI as the CLI's, v2.42.1) against the frontend, with the codec server. */
function startUiServer(
  binary: string,
  runDir: string,
  options: { address: string; uiPort: number; namespace: string; codecEndpoint?: string },
): ManagedProcess {
  const configDir = join(runDir, 'temporal-ui-config');
  mkdirSync(configDir, { recursive: true });
  const origins = [`http://127.0.0.1:${options.uiPort}`, `http://localhost:${options.uiPort}`];
  const yaml = [
    `temporalGrpcAddress: ${options.address}`,
    'host: 127.0.0.1',
    `port: ${options.uiPort}`,
    'publicPath: ""',
    'enableUi: true',
    `defaultNamespace: ${options.namespace}`,
    'notifyOnNewVersion: false',
    'refreshInterval: 0s',
    'cors:',
    '  cookieInsecure: true',
    '  unsafeAllowAllOrigins: false',
    '  allowOrigins:',
    ...origins.map((origin) => `    - "${origin}"`),
    'codec:',
    `  endpoint: "${options.codecEndpoint ?? ''}"`,
    '',
  ].join('\n');
  writeFileSync(join(configDir, 'cluster.yaml'), yaml);
  return startProcess('temporal-ui', binary, ['--root', runDir, '--config', 'temporal-ui-config', '--env', 'cluster', 'start'], {
    logFile: join(runDir, 'temporal-ui.log'),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cwd: runDir,
  });
}
