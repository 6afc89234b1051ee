import { DBOS } from '@dbos-inc/dbos-sdk';
import { Pool } from 'pg';
import { DBOS_PEER, stepAttemptsTable, useDbosPeerDeps } from './dbos-backup';
import { peerStepDepsFromEnv, requiredEnv as required } from './peer-steps';

/**
 * The DBOS peer's worker process: the backup workflow on the same simulator, Vault and
 * PostgreSQL as ours, dequeuing at most PEER_CONCURRENCY backups at once. Started (and SIGKILLed,
 * and started again) by the benchmark and its crash check; DBOS resumes the workflows this
 * executor left pending when it launches.
 */
async function main(): Promise<void> {
  const schema = required('DBOS_SCHEMA');
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('DBOS_SCHEMA must be a plain identifier');
  const attempts = new Pool({ connectionString: required('DBOS_SYSTEM_DATABASE_URL'), max: 10 });
  await attempts.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await attempts.query(stepAttemptsTable(schema));
  useDbosPeerDeps({ attempts, schema, ...peerStepDepsFromEnv() });
  DBOS.setConfig({
    name: 'mpc-backup-dbos-peer',
    systemDatabaseUrl: required('DBOS_SYSTEM_DATABASE_URL'),
    systemDatabaseSchemaName: schema,
    logLevel: 'warn',
  });
  await DBOS.launch();
  await DBOS.registerQueue(DBOS_PEER.queueName, { workerConcurrency: Number(process.env.PEER_CONCURRENCY ?? '20'), minPollingIntervalMs: 50, onConflict: 'always_update' });
  process.stdout.write('dbos peer ready\n');
  const stop = () => void DBOS.shutdown().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`dbos peer failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
