import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { migrateWhenReachable } from '../../db/migrate-when-reachable';
import { createDatabasePool } from '../../db/pool';
import { startPostgresServer, type PostgresServer } from '../../stack/postgres-server';

let postgres: PostgresServer | undefined;
afterAll(() => postgres?.stop());

describe('migrations at process start', () => {
  it('wait for a PostgreSQL that is down, then apply (a worker restarted during an outage comes up instead of exiting)', async () => {
    postgres = await startPostgresServer({ logFile: join(inject('runDir'), 'migrate-when-reachable-postgres.log'), allowExternal: false });
    await postgres.kill();
    const pool = createDatabasePool(postgres.url, { connectionTimeoutMs: 1_000, onIdleConnectionError: () => undefined });
    const warnings: string[] = [];
    const migrating = migrateWhenReachable(pool, (message) => warnings.push(message), (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 300))));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await postgres.restart();
    const { applied } = await migrating;
    expect(applied.length).toBeGreaterThanOrEqual(2);
    expect(warnings.length).toBeGreaterThanOrEqual(1);
    expect(warnings[0]).toMatch(/trying again/);
    expect(warnings.join('\n')).not.toContain(new URL(postgres.url).password);
    const tables = await pool.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('client_ciphertexts', 'custodian_shares')");
    expect((tables.rows[0] as { n: number }).n).toBe(2);
    await pool.end();
  }, 60_000);
});
