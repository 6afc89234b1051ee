import { DBOS } from '@dbos-inc/dbos-sdk';
import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { PortalClient } from '../../adapters/portal/portal-client';
import { ShareSealer } from '../../adapters/sealing/share-sealer';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { toKeyRing } from '../../config/key-ring-config';
import { Pool } from 'pg';
import { DBOS_PEER, stepAttemptsTable, useDbosPeerDeps } from './dbos-backup';

/**
 * The DBOS peer's worker process: the backup workflow on the same simulator, Vault and
 * PostgreSQL as ours, dequeuing at most PEER_CONCURRENCY backups at once. Started (and SIGKILLed,
 * and started again) by the benchmark and its crash check; DBOS resumes the workflows this
 * executor left pending when it launches.
 */
function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const portalUrl = required('PORTAL_URL');
  const schema = required('DBOS_SCHEMA');
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('DBOS_SCHEMA must be a plain identifier');
  const portal = new PortalClient({ enclaveUrl: portalUrl, apiUrl: portalUrl, timeoutMs: 30_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 });
  const credentials = new HttpCredentialsSource({ urlTemplate: required('CREDENTIALS_URL'), timeoutMs: 30_000 });
  const attempts = new Pool({ connectionString: required('DBOS_SYSTEM_DATABASE_URL'), max: 10 });
  await attempts.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await attempts.query(stepAttemptsTable(schema));
  useDbosPeerDeps({
    attempts,
    schema,
    portal,
    credentials,
    transit: new VaultTransit({ endpoint: required('VAULT_ADDR'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 30_000 }, new StaticTokenAuth(required('VAULT_TOKEN'))),
    sealer: new ShareSealer(toKeyRing(required('SHARE_SEALING_KEYS'), undefined)),
    store: new PortalCiphertextStore(portal, credentials),
  });
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
