import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, type Pool } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import { CustodianShareRepository } from '../../db/custodian-share-repository';
import { describeDatabaseUrl } from '../../db/database-url';
import { DatabaseRequestError, DatabaseUnavailableError } from '../../db/errors';
import { migrate, MIGRATIONS_DIR } from '../../db/migrate';
import { createDatabasePool } from '../../db/pool';
import { classifyDatabaseError } from '../../db/postgres-error-classifier';
import { startPostgresServer, type PostgresServer } from '../../stack/postgres-server';

// A server of this file's own (never DATABASE_URL's): it is killed and restarted below.
let server: PostgresServer;
let password: string;
const pools: Pool[] = [];

function pool(options: Parameters<typeof createDatabasePool>[1] = {}): Pool {
  const created = createDatabasePool(server.url, options);
  pools.push(created);
  return created;
}

beforeAll(async () => {
  const logFile = join(inject('runDir'), 'postgres-server-test.log');
  const started = Date.now();
  server = await startPostgresServer({ logFile, allowExternal: false });
  password = decodeURIComponent(new URL(server.url).password);
  process.stdout.write(
    `[postgres-server.test] kind=${server.kind} version=${server.version} cold start ${Date.now() - started} ms, ` +
      `${describeDatabaseUrl(server.url)}, log ${logFile}\n`,
  );
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  await server?.stop();
});

describe('startPostgresServer: our own PostgreSQL', () => {
  it('serves the service database to a login role that is not a superuser, on 127.0.0.1 only', async () => {
    expect(['path', 'embedded']).toContain(server.kind);
    expect(server.pid).toBeGreaterThan(0);
    const { rows } = await pool().query<{ superuser: boolean; listen: string; db: string; fsync: string }>(
      `SELECT rolsuper AS superuser, current_setting('listen_addresses') AS listen, current_database() AS db,
              current_setting('fsync') AS fsync
         FROM pg_roles WHERE rolname = current_user`,
    );
    expect(rows[0]).toEqual({ superuser: false, listen: '127.0.0.1', db: 'mpc_backup', fsync: 'on' });
  });

  /**
   * Servers that bind seconds after their port is picked (PostgreSQL after initdb) or are restarted
   * on it listen below the kernel's range for outgoing connections (32768-60999), which once took a
   * campaign PostgreSQL's port before it bound (CI, 2026-12-05). The global setup's Vault and
   * local-kms too.
   */
  it('listens below 32768, out of the range an outgoing connection can take, as the Vault and local-kms of the stack do', () => {
    for (const url of [server.url, inject('vaultAddr'), inject('kmsEndpoint')]) expect(Number(new URL(url).port), url.replace(/\/\/.*@/, '//')).toBeLessThan(32_768);
  });

  it('requires the password (scram-sha-256, no trust), and a refused login names no password', async () => {
    const url = new URL(server.url);
    const client = new Client({ host: url.hostname, port: Number(url.port), user: url.username, database: 'mpc_backup', password: 'wrong' });
    client.on('error', () => undefined);
    const error = await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    await client.end().catch(() => undefined);
    const classified = classifyDatabaseError(error, 'log in');
    expect(classified).toBeInstanceOf(DatabaseRequestError);
    expect(classified.message).toMatch(/28P01 invalid_password/);
    expect(classified.message).not.toContain(password);
  });

  it('stop, kill and restart refuse to touch a server given by DATABASE_URL', async () => {
    await withEnv({ DATABASE_URL: 'postgres://company:s3cret-pw@db.example:5432/backups', POSTGRES_KIND: undefined }, async () => {
      const external = await startPostgresServer({ logFile: join(inject('runDir'), 'unused.log') });
      expect(external.kind).toBe('external');
      expect(external.url).toBe(process.env.DATABASE_URL);
      for (const action of [external.stop, external.kill, external.restart]) {
        const error = await action().then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(error?.message).toMatch(/not started by this process/);
        expect(error?.message).toContain('db.example:5432');
        expect(error?.message).not.toContain('s3cret-pw');
      }
    });
  });

  it('refuses an unknown POSTGRES_KIND', async () => {
    await withEnv({ POSTGRES_KIND: 'docker' }, () =>
      expect(startPostgresServer({ logFile: join(inject('runDir'), 'unused.log') })).rejects.toThrow(
        /POSTGRES_KIND must be external, path or embedded/,
      ),
    );
  });
});

/** Runs `body` with these environment variables set (undefined: unset), then restores them. */
async function withEnv(vars: Record<string, string | undefined>, body: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  try {
    await body();
  } finally {
    apply(saved);
  }
}

describe('migrate', () => {
  /** Drops every table of the schema (whatever the migrations made: a new one is not forgotten here). */
  const dropSchema = async () => {
    const { rows } = await pool().query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    if (rows.length > 0) await pool().query(`DROP TABLE IF EXISTS ${rows.map((row) => `"${row.tablename}"`).join(', ')}`);
  };
  /** Every migration file, in order: what a fresh database gets. */
  const allMigrations = () =>
    readdirSync(MIGRATIONS_DIR)
      .filter((file) => file.endsWith('.sql'))
      .sort()
      .map((file) => file.replace(/\.sql$/, ''));
  afterEach(async () => {
    // Leave the schema current for the tests after this block.
    await migrate(pool());
  });

  it('two processes starting at once: both succeed, the migrations are applied once', async () => {
    await dropSchema();
    const [first, second] = await Promise.all([migrate(pool()), migrate(pool())]);
    const applied = [...first.applied, ...second.applied];
    expect(applied).toEqual(allMigrations());
    expect(applied.slice(0, 3)).toEqual(['001_create_client_ciphertexts', '002_create_custodian_shares', '003_create_share_retrievals']);
    const { rows } = await pool().query('SELECT name FROM schema_migrations ORDER BY id');
    expect(rows.map((row: { name: string }) => row.name)).toEqual(applied);
  });

  it('applies every migration on an empty database, and nothing the second time', async () => {
    await dropSchema();
    expect(await migrate(pool())).toEqual({ applied: allMigrations() });
    expect(await migrate(pool())).toEqual({ applied: [] });
  });
});

describe('statement timeout', () => {
  it('a statement the server does not finish in time fails as retryable DatabaseUnavailableError', async () => {
    const slow = pool({ statementTimeoutMs: 300 });
    const error = await slow.query('SELECT pg_sleep(3)').then(
      () => undefined,
      (e: unknown) => classifyDatabaseError(e, 'sleep'),
    );
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect(error?.retryable).toBe(true);
    expect(error?.message).toMatch(/57014 query_canceled/);
  });
});

describe('a crash of PostgreSQL (SIGKILL of the postmaster and its backends)', () => {
  it('fails the next query as retryable, and after a restart every committed row is back', async () => {
    await migrate(pool());
    const db = pool();
    const ciphertexts = new ClientCiphertextRepository(db);
    const shares = new CustodianShareRepository(db);
    const userId = `crash-user-${randomBytes(4).toString('hex')}`;
    const committed: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const pairId = `pair-${i}`;
      expect(await ciphertexts.putOnce(userId, pairId, `vault:v1:ct-${i}`)).toBe('inserted');
      committed.push(pairId);
    }
    expect(
      await shares.putOnce({
        clientId: userId,
        backupMethod: 'PASSWORD',
        pairId: 'pair-0',
        encryptedShare: 'vault:v1:custodian',
        shareSha256: 'a'.repeat(64),
      }),
    ).toBe('inserted');

    const pidBefore = server.pid;
    const inFlight = db.query('SELECT pg_sleep(10)').then(
      () => undefined,
      (e: unknown) => classifyDatabaseError(e, 'sleep'),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await server.kill();
    // A statement running at the moment of the crash fails as retryable too.
    const inFlightError = await inFlight;
    expect(inFlightError).toBeInstanceOf(DatabaseUnavailableError);
    expect(inFlightError?.message).not.toContain(password);
    const failure = await ciphertexts.putOnce(userId, 'after-kill', 'vault:v1:x').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(DatabaseUnavailableError);
    expect((failure as DatabaseUnavailableError).retryable).toBe(true);
    expect((failure as Error).message).not.toContain(password);
    process.stdout.write(`[postgres-server.test] after SIGKILL: ${(failure as Error).message}\n`);

    const restarted = Date.now();
    await server.restart();
    process.stdout.write(`[postgres-server.test] restart after SIGKILL (crash recovery) ${Date.now() - restarted} ms\n`);
    expect(server.pid).not.toBe(pidBefore);
    // The same pool works again: it drops the dead connections and opens new ones.
    expect((await ciphertexts.listByUser(userId)).map((row) => row.pairId).sort()).toEqual([...committed].sort());
    expect(await shares.listByClient(userId)).toHaveLength(1);
    expect(await ciphertexts.get(userId, 'after-kill')).toBeUndefined();
  });

  it('restarts warm (graceful stop, same data directory and port) and keeps the rows', async () => {
    const db = pool();
    const ciphertexts = new ClientCiphertextRepository(db);
    const userId = `warm-user-${randomBytes(4).toString('hex')}`;
    await ciphertexts.putOnce(userId, 'p1', 'vault:v1:warm');
    const started = Date.now();
    await server.restart();
    process.stdout.write(`[postgres-server.test] warm restart (fast shutdown + start) ${Date.now() - started} ms\n`);
    expect(await ciphertexts.get(userId, 'p1')).toBe('vault:v1:warm');
  });
});
