import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Pool } from 'pg';
import type { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { transitContext } from '../../adapters/kms/transit-context';
import { orphanedPairs } from '../../activities/backup/orphaned-pairs';
import { sha256Hex, sharePlaintext } from '../../activities/share-plaintext';
import type { PortalClient } from '../../adapters/portal/portal-client';
import type { ShareSealer } from '../../adapters/sealing/share-sealer';
import type { SealedShares } from '../../domain/backup-types';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import type { VaultTransit } from '../../adapters/vault/vault-transit';
import { CURVES, type Curve } from '../../domain/curves';
import { CiphertextVerificationError } from '../../domain/errors';

/**
 * The peer: the same four-step backup as `backupWallet`, as a DBOS Transact workflow (steps
 * checkpointed in PostgreSQL), on the same adapters — credentials source, Portal client, Vault
 * Transit, the Portal ciphertext store — with the same verification (read back and decrypt
 * before marking) and the same secret handling (the shares are sealed before DBOS checkpoints
 * them, as ours are before Temporal records them). What differs is only the engine.
 */
export interface DbosPeerDeps {
  /** The peer's own table of step attempts (see attemptOf), in the same PostgreSQL as DBOS's, and the schema it is in. */
  attempts: Pool;
  schema: string;
  credentials: HttpCredentialsSource;
  portal: PortalClient;
  transit: VaultTransit;
  sealer: ShareSealer;
  store: CiphertextStore;
}

export interface DbosBackupResult {
  userId: string;
  pairIds: Record<Curve, string>;
  /** Pairs a step-1 attempt made whose answer was lost (a crash after Portal answered): named, never marked. */
  orphanedPairIds: string[];
}

type Encrypted = Record<Curve, { pairId: string; ciphertext: string; plaintextSha256: string }>;

/** Transient failures retry without end, as ours do after step 1 (1 s, doubling, up to about 1 minute per wait). */
const RETRY = { retriesAllowed: true, intervalSeconds: 1, backoffRate: 2, maxAttempts: 1_000 } as const;

let deps: DbosPeerDeps | undefined;

/** The process's adapters, set once before DBOS.launch (DBOS workflows are module-level functions). */
export function useDbosPeerDeps(value: DbosPeerDeps): void {
  deps = value;
}

function need(): DbosPeerDeps {
  if (!deps) throw new Error('useDbosPeerDeps was not called before the DBOS peer ran');
  return deps;
}

/** Step 1: credentials and `/v1/backup`; the shares leave it sealed. A retry names the pairs earlier attempts made. */
async function mpcBackup(userId: string, startedAtMs: number): Promise<{ sealed: SealedShares; pairIds: Record<Curve, string>; orphanedPairIds: string[] }> {
  const { credentials, portal, sealer } = need();
  const attempt = await attemptOf('mpcBackup');
  const { clientApiKey, generateResponse } = await credentials.load(userId);
  const shares = await portal.backup(clientApiKey, generateResponse);
  const pairIds = Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as Record<Curve, string>;
  // A crash (or lost answer) after Portal answered re-runs this step: the earlier pairs are orphans.
  const orphanedPairIds = attempt > 1 ? await orphanedPairs(portal, clientApiKey, startedAtMs - 5_000, new Set(Object.values(pairIds))) : [];
  return { sealed: sealer.seal(userId, shares), pairIds, orphanedPairIds };
}

/**
 * This execution's attempt at a step, counted in PostgreSQL. DBOS re-runs an unfinished step from
 * attempt 1 after a crash (its attempt counter lives in the process, and a queued workflow's
 * recovery count is reset when it is re-queued), so it cannot say that a step already reached
 * Portal; Temporal's activity attempt does, because the server counts it. This table is what the
 * peer needs to name orphans as ours does: one upsert per counted step.
 */
export const stepAttemptsTable = (schema: string) => `
  CREATE TABLE IF NOT EXISTS ${schema}.dbos_peer_step_attempts (
    workflow_id text NOT NULL, step text NOT NULL, attempts integer NOT NULL,
    PRIMARY KEY (workflow_id, step))`;

async function attemptOf(step: string): Promise<number> {
  const { attempts, schema } = need();
  const { rows } = await attempts.query<{ attempts: number }>(
    `INSERT INTO ${schema}.dbos_peer_step_attempts AS counted (workflow_id, step, attempts) VALUES ($1, $2, 1)
     ON CONFLICT (workflow_id, step) DO UPDATE SET attempts = counted.attempts + 1
     RETURNING attempts`,
    [DBOS.workflowID, step],
  );
  return rows[0]!.attempts;
}

/** Step 2: both curves in one Transit batch, each bound to user and pair. */
async function encryptShares(userId: string, sealed: SealedShares): Promise<Encrypted> {
  const { transit, sealer } = need();
  const shares = sealer.unseal(userId, sealed);
  const plaintexts = CURVES.map((curve) => sharePlaintext(shares[curve]));
  const ciphertexts = await transit.encryptBatch(CURVES.map((curve, i) => ({ plaintext: plaintexts[i]!, context: transitContext(userId, shares[curve].id) })));
  return Object.fromEntries(
    CURVES.map((curve, i) => [curve, { pairId: shares[curve].id, ciphertext: ciphertexts[i]!, plaintextSha256: sha256Hex(plaintexts[i]!) }]),
  ) as Encrypted;
}

/** Step 3: write-once store, read back what was written, decrypt and compare, as storeCiphertexts does. */
async function storeCiphertexts(userId: string, encrypted: Encrypted): Promise<void> {
  const { store, transit } = need();
  const context = { userId };
  // Write-once: a re-run (after a failure or a crash) looks first, as ours does from its second attempt.
  const attempt = await attemptOf('storeCiphertexts');
  const items = CURVES.map((curve) => ({ curve, pairId: encrypted[curve].pairId, ciphertext: encrypted[curve].ciphertext }));
  const { alreadyStored } = await store.put(context, items, { freshPairs: attempt === 1 });
  const readBack = await Promise.all(
    CURVES.map((curve) => (alreadyStored.includes(encrypted[curve].pairId) ? encrypted[curve].ciphertext : store.get(context, encrypted[curve].pairId, curve))),
  );
  const plaintexts = await transit.decryptBatch(CURVES.map((curve, i) => ({ ciphertext: readBack[i]!, context: transitContext(userId, encrypted[curve].pairId) })));
  CURVES.forEach((curve, i) => {
    if (readBack[i] !== encrypted[curve].ciphertext || sha256Hex(plaintexts[i]!) !== encrypted[curve].plaintextSha256) {
      throw new CiphertextVerificationError(`the stored ciphertext of pair ${encrypted[curve].pairId} does not verify`);
    }
  });
}

/** Step 4: mark both pairs stored (idempotent at Portal). */
async function markPairsStored(userId: string, pairIds: Record<Curve, string>): Promise<void> {
  const { credentials, portal } = need();
  const { clientApiKey } = await credentials.load(userId);
  await portal.markBackupPairsStored(clientApiKey, CURVES.map((curve) => pairIds[curve]));
}

async function backupWalletDbos(userId: string): Promise<DbosBackupResult> {
  const startedAtMs = await DBOS.now();
  // Step 1 is not idempotent at Portal: like ours, it retries a transient failure (a lost answer makes orphans, named).
  const first = await DBOS.runStep(() => mpcBackup(userId, startedAtMs), { name: 'mpcBackup', ...RETRY, maxAttempts: 30 });
  const encrypted = await DBOS.runStep(() => encryptShares(userId, first.sealed), { name: 'encryptShares', ...RETRY });
  await DBOS.runStep(() => storeCiphertexts(userId, encrypted), { name: 'storeCiphertexts', ...RETRY });
  await DBOS.runStep(() => markPairsStored(userId, first.pairIds), { name: 'markPairsStored', ...RETRY });
  return { userId, pairIds: first.pairIds, orphanedPairIds: first.orphanedPairIds };
}

/** The workflow's registered name and queue, which the driver enqueues into from another process. */
export const DBOS_PEER = { workflowName: 'backupWalletDbos', queueName: 'backups' } as const;

export const backupWalletDbosWorkflow = DBOS.registerWorkflow(backupWalletDbos, { name: DBOS_PEER.workflowName });
