import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortBelow32768 } from '../../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../../stack/managed-process';

/** The Restate server the peer runs on: the binary of @restatedev/restate-server (pinned in package.json), one node. */
export interface RestateServer {
  /** HTTP ingress, where invocations are sent and attached to. */
  ingressUrl: string;
  /** Admin API (deployments, health). */
  adminUrl: string;
  version: string;
  process: ManagedProcess;
  /** Registers the service deployment at `uri` (the server discovers its services there). */
  registerDeployment(uri: string): Promise<void>;
  /** Rows of a SQL query over the server's introspection tables (sys_invocation, sys_journal, …). */
  query<Row>(sql: string): Promise<Row[]>;
  stop(): Promise<void>;
}

export class RestateServerError extends Error {
  override readonly name = 'RestateServerError';
}

/**
 * The platform's binary shipped in the server package's optional dependency
 * (@restatedev/restate-server-<platform>-<arch>), as the package's own launcher finds it.
 */
export function restateServerBinary(): string {
  const pkg = `@restatedev/restate-server-${process.platform}-${process.arch}`;
  try {
    return require.resolve(`${pkg}/bin/restate-server`);
  } catch {
    throw new RestateServerError(`no restate-server binary for ${process.platform}-${process.arch}: ${pkg} is not installed (npm ci installs it with @restatedev/restate-server)`);
  }
}

/**
 * One node on loopback, free ports, its data in `dataDir`: TCP only, no Web UI, no telemetry. The
 * server's defaults otherwise (partitions, invoker limits, retry policy), as a team would start it.
 */
function serverConfig(dataDir: string, ports: { fabric: number; admin: number; ingress: number }): string {
  return [
    `base-dir = ${JSON.stringify(dataDir)}`,
    'node-name = "bench"',
    'listen-mode = "tcp"',
    'disable-telemetry = true',
    'log-filter = "warn"',
    'log-disable-ansi-codes = true',
    `bind-address = "127.0.0.1:${ports.fabric}"`,
    `advertised-address = "http://127.0.0.1:${ports.fabric}/"`,
    '[admin]',
    `bind-address = "127.0.0.1:${ports.admin}"`,
    'disable-web-ui = true',
    '[ingress]',
    `bind-address = "127.0.0.1:${ports.ingress}"`,
    '',
  ].join('\n');
}

const READY_TIMEOUT_MS = 120_000;

/**
 * restate-server with its configuration and log in `dir`, its data in a fresh folder under
 * os.tmpdir() (removed when it stops, as the stack's own PostgreSQL's is); ready once its admin
 * API and ingress answer.
 */
export async function startRestateServer(dir: string): Promise<RestateServer> {
  mkdirSync(dir, { recursive: true });
  const binary = restateServerBinary();
  const ports = { fabric: await freePortBelow32768(), admin: await freePortBelow32768(), ingress: await freePortBelow32768() };
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  const dataDir = mkdtempSync(join(tmpdir(), 'restate-data-'));
  const removeData = () => rmSync(dataDir, { recursive: true, force: true });
  const configFile = join(dir, 'restate-server.toml');
  writeFileSync(configFile, serverConfig(dataDir, ports));
  const child = startProcess('restate-server', binary, ['--config-file', configFile, '--no-logo'], {
    logFile: join(dir, 'restate-server.log'),
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DO_NOT_TRACK: '1' },
  });
  const adminUrl = `http://127.0.0.1:${ports.admin}`;
  const ingressUrl = `http://127.0.0.1:${ports.ingress}`;
  try {
    await waitUntil('restate-server admin', async () => (await fetch(`${adminUrl}/health`)).ok, READY_TIMEOUT_MS, child.exited);
    await waitUntil('restate-server ingress', async () => (await fetch(`${ingressUrl}/restate/health`)).ok, READY_TIMEOUT_MS, child.exited);
  } catch (error) {
    await child.stop(5_000);
    removeData();
    throw error;
  }
  return {
    ingressUrl,
    adminUrl,
    version,
    process: child,
    registerDeployment: (uri) => registerDeployment(adminUrl, uri),
    query: (sql) => queryAdmin(adminUrl, sql),
    async stop() {
      await child.stop(15_000);
      removeData();
    },
  };
}

async function registerDeployment(adminUrl: string, uri: string): Promise<void> {
  const response = await fetch(`${adminUrl}/deployments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uri }),
  });
  if (!response.ok) throw new RestateServerError(`registering the deployment at ${uri} failed: HTTP ${response.status} ${await response.text()}`);
}

async function queryAdmin<Row>(adminUrl: string, sql: string): Promise<Row[]> {
  const response = await fetch(`${adminUrl}/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: sql }),
  });
  if (!response.ok) throw new RestateServerError(`query failed: HTTP ${response.status} ${await response.text()}`);
  return ((await response.json()) as { rows: Row[] }).rows;
}
