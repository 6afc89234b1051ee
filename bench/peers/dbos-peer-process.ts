import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DBOSClient } from '@dbos-inc/dbos-sdk';
import { startProcess, waitUntil, type ManagedProcess } from '../../stack/managed-process';
import { DBOS_PEER, type DbosBackupResult } from './dbos-backup';
import { peerProcessEnv, type PeerTargets } from './peer-steps';

const ROOT = join(__dirname, '..', '..');

/** What the DBOS peer runs against: the same simulator, Vault and PostgreSQL as ours, a schema of its own. */
export interface DbosPeerSetup extends PeerTargets {
  databaseUrl: string;
  schema: string;
  concurrency: number;
  logFile: string;
}

/** A fresh schema name for one run of the peer (its DBOS tables and its step-attempt table). */
export function dbosPeerSchema(): string {
  return `dbos_peer_${randomBytes(4).toString('hex')}`;
}

/** The peer's worker process (bench/peers/dbos-peer-main.ts); resolves once it dequeues. A second start on the same schema recovers what the first left pending. */
export async function startDbosPeer(setup: DbosPeerSetup, sealingKey = `peer-1:${randomBytes(32).toString('base64')}`): Promise<ManagedProcess> {
  const child = startProcess('dbos-peer', process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'peers', 'dbos-peer-main.ts')], {
    logFile: setup.logFile,
    cwd: ROOT,
    env: {
      ...peerProcessEnv(setup, sealingKey),
      DBOS_SYSTEM_DATABASE_URL: setup.databaseUrl,
      DBOS_SCHEMA: setup.schema,
      PEER_CONCURRENCY: String(setup.concurrency),
    },
  });
  const ready = async () => existsSync(child.logFile) && readFileSync(child.logFile, 'utf8').includes('dbos peer ready');
  await waitUntil('the DBOS peer', ready, 120_000, child.exited);
  return child;
}

/** A client in another process (the backend's, or the benchmark's), enqueuing into the peer's queue through PostgreSQL. */
export function connectDbosPeerClient(setup: Pick<DbosPeerSetup, 'databaseUrl' | 'schema'>): Promise<DBOSClient> {
  return DBOSClient.create({ systemDatabaseUrl: setup.databaseUrl, systemDatabaseSchemaName: setup.schema });
}

/** One user's backup, id `backup-<userId>` as ours. */
export function enqueueDbosBackup(client: DBOSClient, userId: string) {
  return client.enqueue<(userId: string) => Promise<DbosBackupResult>>({ workflowName: DBOS_PEER.workflowName, queueName: DBOS_PEER.queueName, workflowID: `backup-${userId}` }, userId);
}
