import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { describeDatabaseUrl } from '../../db/database-url';
import { migrate } from '../../db/migrate';
import { createDatabasePool } from '../../db/pool';
import { startPostgresServer, type PostgresServer } from '../../stack/postgres-server';
import { startTemporalCluster, type TemporalCluster } from '../../stack/temporal-cluster';
import { startTemporalDevServer } from '../../stack/temporal-dev-server';
import { startVaultDevServer } from '../../stack/vault-dev-server';
import { operatorKeyNames, seedSigningKeys } from '../../stack/operator-keys';
import { API_SIGNER, TEST_OPERATORS } from './operator-names';
import { startLocalKms } from '../../stack/local-kms-server';
import { writeWorkflowBundle } from '../../stack/worker-process';

/** Logs and the workflow bundle; MPC_TEST_RUN_DIR gives concurrent runs (several engineers on one machine) their own. */
export const RUN_DIR = process.env.MPC_TEST_RUN_DIR ?? join(__dirname, '..', '..', '.stack', 'test-run');

/**
 * Starts the real servers every test file shares (a Temporal dev server, a Vault dev server with
 * Transit, and PostgreSQL: DATABASE_URL's, or one of our own with the schema migrated), bundles
 * the workflow code once, and hands their addresses to the tests. Beside them, a Temporal cluster
 * (temporal-server as four processes on a PostgreSQL of its own) for the tests in test/cluster/;
 * MPC_TEST_CLUSTER=off leaves it out for quick local runs of other files (those tests then fail
 * and say so).
 */
export default async function setup(project: TestProject) {
  mkdirSync(RUN_DIR, { recursive: true });
  const started = Date.now();
  const withCluster = process.env.MPC_TEST_CLUSTER !== 'off';
  const servers = await Promise.allSettled([
    startTemporalDevServer({ logFile: join(RUN_DIR, 'temporal.log') }),
    startVaultDevServer({ logFile: join(RUN_DIR, 'vault.log') }),
    startMigratedPostgres(join(RUN_DIR, 'postgres.log')),
    withCluster ? startTemporalCluster({ runDir: join(RUN_DIR, 'temporal-cluster'), allowExternalDatabase: false }) : undefined,
    // A fresh key store per run: each test env makes its own key alias in it.
    startLocalKms({ dataDir: join(RUN_DIR, `local-kms-${process.pid}`), logFile: join(RUN_DIR, 'local-kms.log') }),
  ] as const);
  const [temporalStart, vaultStart, postgresStart, clusterStart, kmsStart] = servers;
  if (servers.some((s) => s.status === 'rejected')) {
    await Promise.all(servers.map((s) => (s.status === 'fulfilled' ? s.value?.stop() : undefined)));
    throw servers.map((s) => (s.status === 'rejected' ? s.reason : undefined)).find(Boolean);
  }
  // Every one was fulfilled (a rejection threw above).
  const value = <T>(settled: PromiseSettledResult<T>): T => (settled as PromiseFulfilledResult<T>).value;
  const temporal = value(temporalStart);
  const vault = value(vaultStart);
  const postgres = value(postgresStart);
  const cluster: TemporalCluster | undefined = value(clusterStart);
  const kms = value(kmsStart);
  const stopAll = () => Promise.all([temporal.stop(), vault.stop(), postgres.stop(), cluster?.stop(), kms.stop()]);
  const bundlePath = join(RUN_DIR, 'workflow-bundle.js');
  let signingTokens: Record<string, string>;
  try {
    await writeWorkflowBundle(bundlePath);
    // Operators' signing keys (test/support/operators.ts) and the HTTP API's, each with a token that may sign only with it.
    signingTokens = await seedSigningKeys(vault.addr, vault.rootToken, { ...operatorKeyNames(TEST_OPERATORS), [API_SIGNER]: 'mpc-backup-api' });
  } catch (error) {
    await stopAll();
    throw error;
  }
  process.stdout.write(
    `test stack ready in ${Date.now() - started} ms: Temporal ${temporal.address}, Vault ${vault.addr}, local-kms ${kms.endpoint}, ` +
      `PostgreSQL ${postgres.server.kind} ${describeDatabaseUrl(postgres.server.url)}, ` +
      `${cluster ? `Temporal cluster ${cluster.address} (v${cluster.serverVersion}, ${cluster.historyShards} shards)` : 'no Temporal cluster (MPC_TEST_CLUSTER=off)'}, logs in ${RUN_DIR}\n`,
  );

  project.provide('temporalAddress', temporal.address);
  project.provide('vaultAddr', vault.addr);
  project.provide('vaultToken', vault.rootToken);
  project.provide('kmsEndpoint', kms.endpoint);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('codecKeys', `test-key-1:${randomBytes(32).toString('base64')}`);
  project.provide('sealingKeys', `test-seal-1:${randomBytes(32).toString('base64')}`);
  project.provide('runDir', RUN_DIR);
  project.provide('databaseUrl', postgres.server.url);
  project.provide('clusterAddress', cluster?.address ?? '');
  project.provide('signingTokens', signingTokens);

  return async () => {
    await stopAll();
  };
}

/** PostgreSQL for the tests with the schema applied once; `stop` leaves an external server running. */
async function startMigratedPostgres(logFile: string): Promise<{ server: PostgresServer; stop(): Promise<void> }> {
  const server = await startPostgresServer({ logFile });
  const stop = () => (server.kind === 'external' ? Promise.resolve() : server.stop());
  const pool = createDatabasePool(server.url);
  try {
    await migrate(pool);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    await pool.end();
  }
  return { server, stop };
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    vaultAddr: string;
    vaultToken: string;
    /** local-kms (AWS KMS) for KMS_PROVIDER=aws-kms; each test env makes a key alias of its own. */
    kmsEndpoint: string;
    workflowBundlePath: string;
    codecKeys: string;
    /** The workers' share-sealing key ring (never given to the test's clients). */
    sealingKeys: string;
    runDir: string;
    /** postgres:// URL of the migrated test database (holds a password: log describeDatabaseUrl of it). */
    databaseUrl: string;
    /** The frontend of the shared Temporal cluster (test/cluster/); '' with MPC_TEST_CLUSTER=off. */
    clusterAddress: string;
    /** Per signing identity (TEST_OPERATORS, API_SIGNER), a Vault token that may sign only with its own Transit key. */
    signingTokens: Record<string, string>;
  }
}
