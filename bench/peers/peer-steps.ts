import { HttpCredentialsSource } from '../../adapters/credentials/credentials-source';
import { transitContext } from '../../adapters/kms/transit-context';
import { PortalClient } from '../../adapters/portal/portal-client';
import { ShareSealer } from '../../adapters/sealing/share-sealer';
import type { CiphertextStore } from '../../adapters/stores/ciphertext-store';
import { PortalCiphertextStore } from '../../adapters/stores/portal-ciphertext-store';
import { StaticTokenAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { orphanedPairs } from '../../activities/backup/orphaned-pairs';
import { sha256Hex, sharePlaintext } from '../../activities/share-plaintext';
import { toKeyRing } from '../../config/key-ring-config';
import type { SealedShares } from '../../domain/backup-types';
import { CURVES, type Curve } from '../../domain/curves';
import { CiphertextVerificationError } from '../../domain/errors';

/**
 * The four steps of `backupWallet` for the peers (bench/peers/: DBOS, Restate), on the same
 * adapters — credentials source, Portal client, Vault Transit, the Portal ciphertext store — with
 * the same verification (read back and decrypt before marking) and the same secret handling (the
 * shares are sealed before the engine records them, as ours are before Temporal does). Each peer
 * wraps them in its engine's durable steps; what differs is only the engine.
 */
export interface PeerStepDeps {
  credentials: HttpCredentialsSource;
  portal: PortalClient;
  transit: VaultTransit;
  sealer: ShareSealer;
  store: CiphertextStore;
}

/** The steps whose re-run must know it is one: step 1 names orphans, step 3 looks before writing. */
export type CountedStep = 'mpcBackup' | 'storeCiphertexts';

/**
 * This execution's attempt at a step of this backup, counted where a crash of the peer's process
 * does not lose it (each engine's peer says where). Temporal counts an activity's attempts on its
 * server; the peers' engines do not tell a step that an earlier attempt of it reached Portal.
 */
export type AttemptOf = (step: CountedStep) => Promise<number>;

export interface PeerBackupResult {
  userId: string;
  pairIds: Record<Curve, string>;
  /** Pairs a step-1 attempt made whose answer was lost (a crash after Portal answered): named, never marked. */
  orphanedPairIds: string[];
}

export type Encrypted = Record<Curve, { pairId: string; ciphertext: string; plaintextSha256: string }>;

export interface FirstStep {
  sealed: SealedShares;
  pairIds: Record<Curve, string>;
  orphanedPairIds: string[];
}

/** Transient failures retry without end, as ours do after step 1 (1 s, doubling, up to about 1 minute per wait); step 1 at most 30 times. */
export const PEER_RETRY = { initialIntervalMs: 1_000, factor: 2, maxIntervalMs: 60_000, maxAttempts: 1_000, firstStepMaxAttempts: 30 } as const;

/** Step 1: credentials and `/v1/backup`; the shares leave it sealed. A retry names the pairs earlier attempts made. */
export async function mpcBackup(deps: PeerStepDeps, attemptOf: AttemptOf, userId: string, startedAtMs: number): Promise<FirstStep> {
  const { credentials, portal, sealer } = deps;
  const attempt = await attemptOf('mpcBackup');
  const { clientApiKey, generateResponse } = await credentials.load(userId);
  const shares = await portal.backup(clientApiKey, generateResponse);
  const pairIds = Object.fromEntries(CURVES.map((curve) => [curve, shares[curve].id])) as Record<Curve, string>;
  // A crash (or lost answer) after Portal answered re-runs this step: the earlier pairs are orphans.
  const orphanedPairIds = attempt > 1 ? await orphanedPairs(portal, clientApiKey, startedAtMs - 5_000, new Set(Object.values(pairIds))) : [];
  return { sealed: sealer.seal(userId, shares), pairIds, orphanedPairIds };
}

/** Step 2: both curves in one Transit batch, each bound to user and pair. */
export async function encryptShares(deps: PeerStepDeps, userId: string, sealed: SealedShares): Promise<Encrypted> {
  const { transit, sealer } = deps;
  const shares = sealer.unseal(userId, sealed);
  const plaintexts = CURVES.map((curve) => sharePlaintext(shares[curve]));
  const ciphertexts = await transit.encryptBatch(CURVES.map((curve, i) => ({ plaintext: plaintexts[i]!, context: transitContext(userId, shares[curve].id) })));
  return Object.fromEntries(
    CURVES.map((curve, i) => [curve, { pairId: shares[curve].id, ciphertext: ciphertexts[i]!, plaintextSha256: sha256Hex(plaintexts[i]!) }]),
  ) as Encrypted;
}

/** Step 3: write-once store, read back what was written, decrypt and compare, as storeCiphertexts does. */
export async function storeCiphertexts(deps: PeerStepDeps, attemptOf: AttemptOf, userId: string, encrypted: Encrypted): Promise<void> {
  const { store, transit } = deps;
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
export async function markPairsStored(deps: PeerStepDeps, userId: string, pairIds: Record<Curve, string>): Promise<void> {
  const { credentials, portal } = deps;
  const { clientApiKey } = await credentials.load(userId);
  await portal.markBackupPairsStored(clientApiKey, CURVES.map((curve) => pairIds[curve]));
}

export function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

/** A peer process's adapters from its environment (PORTAL_URL, CREDENTIALS_URL, VAULT_ADDR, VAULT_TOKEN, SHARE_SEALING_KEYS). */
export function peerStepDepsFromEnv(): PeerStepDeps {
  const portalUrl = requiredEnv('PORTAL_URL');
  const portal = new PortalClient({ enclaveUrl: portalUrl, apiUrl: portalUrl, timeoutMs: 30_000, storeCipherTextMethod: 'POST', maxResponseBytes: 1024 * 1024 });
  const credentials = new HttpCredentialsSource({ urlTemplate: requiredEnv('CREDENTIALS_URL'), timeoutMs: 30_000 });
  return {
    portal,
    credentials,
    transit: new VaultTransit({ endpoint: requiredEnv('VAULT_ADDR'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 30_000 }, new StaticTokenAuth(requiredEnv('VAULT_TOKEN'))),
    sealer: new ShareSealer(toKeyRing(requiredEnv('SHARE_SEALING_KEYS'), undefined)),
    store: new PortalCiphertextStore(portal, credentials),
  };
}

/** What every peer runs against: the same simulator and Vault as ours. */
export interface PeerTargets {
  portalUrl: string;
  vaultAddr: string;
  vaultToken: string;
}

/** The environment of a peer process: the adapters' settings (peerStepDepsFromEnv reads them) and nothing else of ours. */
export function peerProcessEnv(targets: PeerTargets, sealingKey: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORTAL_URL: targets.portalUrl,
    CREDENTIALS_URL: `${targets.portalUrl}/backend/users/{userId}/credentials`,
    VAULT_ADDR: targets.vaultAddr,
    VAULT_TOKEN: targets.vaultToken,
    SHARE_SEALING_KEYS: sealingKey,
  };
}
