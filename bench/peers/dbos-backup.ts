import { DBOS } from '@dbos-inc/dbos-sdk';
import type { Pool } from 'pg';
import { encryptShares, markPairsStored, mpcBackup, PEER_RETRY, storeCiphertexts, type CountedStep, type PeerBackupResult, type PeerStepDeps } from './peer-steps';

/**
 * The DBOS peer: the four steps of bench/peers/peer-steps.ts as a DBOS Transact workflow (steps
 * checkpointed in PostgreSQL). What differs from ours is only the engine.
 */
export interface DbosPeerDeps extends PeerStepDeps {
  /** The peer's own table of step attempts (see attemptOf), in the same PostgreSQL as DBOS's, and the schema it is in. */
  attempts: Pool;
  schema: string;
}

export type DbosBackupResult = PeerBackupResult;

const RETRY = { retriesAllowed: true, intervalSeconds: PEER_RETRY.initialIntervalMs / 1000, backoffRate: PEER_RETRY.factor, maxAttempts: PEER_RETRY.maxAttempts } as const;

let deps: DbosPeerDeps | undefined;

/** The process's adapters, set once before DBOS.launch (DBOS workflows are module-level functions). */
export function useDbosPeerDeps(value: DbosPeerDeps): void {
  deps = value;
}

function need(): DbosPeerDeps {
  if (!deps) throw new Error('useDbosPeerDeps was not called before the DBOS peer ran');
  return deps;
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

async function attemptOf(step: CountedStep): Promise<number> {
  const { attempts, schema } = need();
  const { rows } = await attempts.query<{ attempts: number }>(
    `INSERT INTO ${schema}.dbos_peer_step_attempts AS counted (workflow_id, step, attempts) VALUES ($1, $2, 1)
     ON CONFLICT (workflow_id, step) DO UPDATE SET attempts = counted.attempts + 1
     RETURNING attempts`,
    [DBOS.workflowID, step],
  );
  return rows[0]!.attempts;
}

async function backupWalletDbos(userId: string): Promise<DbosBackupResult> {
  const startedAtMs = await DBOS.now();
  // Step 1 is not idempotent at Portal: like ours, it retries a transient failure (a lost answer makes orphans, named).
  const first = await DBOS.runStep(() => mpcBackup(need(), attemptOf, userId, startedAtMs), { name: 'mpcBackup', ...RETRY, maxAttempts: PEER_RETRY.firstStepMaxAttempts });
  const encrypted = await DBOS.runStep(() => encryptShares(need(), userId, first.sealed), { name: 'encryptShares', ...RETRY });
  await DBOS.runStep(() => storeCiphertexts(need(), attemptOf, userId, encrypted), { name: 'storeCiphertexts', ...RETRY });
  await DBOS.runStep(() => markPairsStored(need(), userId, first.pairIds), { name: 'markPairsStored', ...RETRY });
  return { userId, pairIds: first.pairIds, orphanedPairIds: first.orphanedPairIds };
}

/** The workflow's registered name and queue, which the driver enqueues into from another process. */
export const DBOS_PEER = { workflowName: 'backupWalletDbos', queueName: 'backups' } as const;

export const backupWalletDbosWorkflow = DBOS.registerWorkflow(backupWalletDbos, { name: DBOS_PEER.workflowName });
