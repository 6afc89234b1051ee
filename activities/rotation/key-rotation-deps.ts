import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { CustodianShareRepository } from '../../db/custodian-share-repository';
import type { StepReceipts } from '../step-receipts';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { CredentialsSource } from '../../adapters/credentials/credentials-source';
import type { PortalClient } from '../../adapters/portal/portal-client';
import type { KmsProvider } from '../../adapters/kms/kms-provider';

/**
 * What a key rotation needs, as narrow as it can be: the worker passes its activity deps, a
 * Temporal client and the database; tests pass real adapters (or wrappers around them).
 */
export interface KeyRotationDeps {
  credentials: Pick<CredentialsSource, 'load'>;
  portal: Pick<PortalClient, 'getClient'>;
  transit: Pick<KmsProvider, 'keyName' | 'keyVersions' | 'rotateKey' | 'rewrapEach' | 'decryptEach' | 'setMinDecryptionVersion'>;
  store: Pick<CiphertextStore, 'kind' | 'get' | 'replace' | 'replaceUnsupported'>;
  /** Every store that keeps a copy (CIPHERTEXT_STORES): rotation refuses more than one (it rewraps one store). */
  copies?: readonly Pick<CiphertextStore, 'kind'>[];
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
