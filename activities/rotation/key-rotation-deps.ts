import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { CustodianShareRepository } from '../../db/custodian-share-repository';
import type { StepReceipts } from '../step-receipts';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient } from '../../adapters/portal/portal-client';
import type { KmsProvider } from '../../adapters/kms/kms-provider';

/** What rotation uses of a store. */
export type RotationStore = Pick<CiphertextStore, 'kind' | 'get' | 'replace' | 'replaceUnsupported'>;

/** The stores a rotation rewraps: every copy when several stores keep copies, else the primary alone. */
export function rotationStores(deps: Pick<KeyRotationDeps, 'store' | 'copies'>): readonly RotationStore[] {
  return deps.copies && deps.copies.length > 1 ? deps.copies : [deps.store];
}

/**
 * What a key rotation needs, as narrow as it can be: the worker passes its activity deps, a
 * Temporal client and the database; tests pass real adapters (or wrappers around them).
 */
export interface KeyRotationDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  transit: Pick<KmsProvider, 'keyName' | 'keyVersions' | 'rotateKey' | 'rewrapEach' | 'decryptEach' | 'setMinDecryptionVersion'>;
  store: RotationStore;
  /**
   * Every store that keeps a copy (CIPHERTEXT_STORES), the primary first: with several, each pair is
   * rewrapped once and the same new ciphertext written to every copy (rewrap-copies.ts). Absent or
   * one: the primary only, as before copies.
   */
  copies?: readonly RotationStore[];
  /** Self-Managed: the custodian shares the webhook holds (rewrapped too). */
  custodianShares?: Pick<CustodianShareRepository, 'listByClient' | 'getByPair' | 'replaceIfUnchanged'>;
  /** Looks at users' backup runs (a running pre-rotation backup defers its user) and lists running ones. */
  temporal: Pick<Client, 'workflow' | 'workflowService' | 'options'>;
  /** The company's database, when the store or the mode uses it: checked for stale rows before the raise. */
  database?: Pool;
  /** The census's and the check's receipts: the raise acts only on a check made by a worker of this run. */
  receipts: StepReceipts;
  heartbeatIntervalMs: number;
}
