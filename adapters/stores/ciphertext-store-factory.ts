import type { Pool } from 'pg';
import { ClientCiphertextRepository } from '../../db/client-ciphertext-repository';
import type { CiphertextStore } from './ciphertext-store';
import type { CredentialsSource } from '../credentials/credentials-source';
import { HttpCiphertextStore, type HttpCiphertextStoreConfig } from './http-ciphertext-store';
import { PortalCiphertextStore } from './portal-ciphertext-store';
import { PostgresCiphertextStore } from './postgres-ciphertext-store';
import type { PortalClient } from '../portal/portal-client';

/** One store of CIPHERTEXT_STORE(S) and what its kind needs (read and validated in config/backend-config.ts). */
export type CiphertextStoreConfig = { kind: 'portal' } | { kind: 'postgres' } | ({ kind: 'http' } & HttpCiphertextStoreConfig);

export type CiphertextStoreKind = CiphertextStoreConfig['kind'];

/** What stores may use; each takes only its part. */
export interface CiphertextStoreDeps {
  portal: PortalClient;
  credentials: CredentialsSource;
  /** The company's database (DATABASE_URL), opened by the worker when a store or the mode needs it. */
  database?: Pool;
}

type Factories = { [K in CiphertextStoreKind]: (config: Extract<CiphertextStoreConfig, { kind: K }>, deps: CiphertextStoreDeps) => CiphertextStore };

/** One line per store: adding a store is its file, a line here and its configuration. */
const FACTORIES: Factories = {
  portal: (_config, deps) => new PortalCiphertextStore(deps.portal, deps.credentials),
  http: (config, _deps) => new HttpCiphertextStore(config),
  postgres: (_config, deps) => {
    if (!deps.database) throw new Error('CIPHERTEXT_STORE=postgres needs DATABASE_URL');
    return new PostgresCiphertextStore(new ClientCiphertextRepository(deps.database));
  },
};

/** One store per configured copy, in the configured order (CIPHERTEXT_STORES; the primary first). */
export function createCiphertextStores(configs: readonly CiphertextStoreConfig[], deps: CiphertextStoreDeps): CiphertextStore[] {
  return configs.map((config) => createCiphertextStore(config, deps));
}

export function createCiphertextStore(config: CiphertextStoreConfig, deps: CiphertextStoreDeps): CiphertextStore {
  const factory = FACTORIES[config.kind] as (config: CiphertextStoreConfig, deps: CiphertextStoreDeps) => CiphertextStore;
  return factory(config, deps);
}
