import type { Pool } from 'pg';
import { createCiphertextStores } from '../adapters/stores/ciphertext-store-factory';
import { HttpCredentialsSource } from '../adapters/credentials/credentials-source';
import { PortalClient } from '../adapters/portal/portal-client';
import { connectKmsAsCaller } from '../adapters/kms/kms-caller';
import { migrate } from '../db/migrate';
import { createDatabasePool } from '../db/pool';
import { ShareRetrievalAudit } from '../db/share-retrieval-audit';
import { createCommandLogger } from '../logging/logger';
import { AuditTrail } from '../db/audit-trail';
import { getClientBackupShare, type ClientBackupShareDeps, type ClientBackupShareRelease } from './client-backup-share';
import { loadEjectConfig, type EjectConfig } from './eject-config';

/** Wires eject retrieval from configuration; `close` ends the database pool. */
export async function openEjectRetrieval(config: EjectConfig = loadEjectConfig()): Promise<{
  getClientBackupShare(userId: string, request: { reason: string }): Promise<ClientBackupShareRelease>;
  close(): Promise<void>;
}> {
  const pool: Pool = createDatabasePool(config.databaseUrl);
  const log = createCommandLogger(config.logLevel, 'mpc-backup-eject');
  try {
    // A one-off command: fail at once (with the database's reason) rather than wait for the database.
    await migrate(pool);
  } catch (error) {
    await pool.end();
    throw error;
  }
  const portal = new PortalClient(config.portal);
  const credentials = new HttpCredentialsSource(config.credentials);
  const { transit, identity } = connectKmsAsCaller(config.kms);
  const copies = createCiphertextStores(config.stores, { portal, credentials, database: pool });
  const deps: ClientBackupShareDeps = {
    credentials,
    portal,
    store: copies[0]!,
    copies,
    transit,
    identity,
    audit: new ShareRetrievalAudit(pool),
    auditTrail: new AuditTrail(pool),
    log: { info: (fields, message) => log.info(fields, message), warn: (fields, message) => log.warn(fields, message) },
  };
  return {
    getClientBackupShare: (userId, request) => getClientBackupShare(deps, userId, request),
    close: () => pool.end(),
  };
}
