import { Context } from '@temporalio/activity';
import { CiphertextReplaceUnsupportedError } from '../../domain/errors';
import { rotationStores, type KeyRotationDeps } from './key-rotation-deps';

export interface TransitKeyState {
  keyName: string;
  latestVersion: number;
  minDecryptionVersion: number;
  storeKind: string;
  custodianShares: boolean;
}

/**
 * The key's versions, and whether every store that keeps a copy can take a rewrap; refuses when one
 * cannot (a copy left on an older version would stop decrypting at the raise). `storeKind` names
 * every store, comma-separated, when several keep copies.
 */
export async function readTransitKey(deps: KeyRotationDeps): Promise<TransitKeyState> {
  const stores = rotationStores(deps);
  for (const store of stores) {
    const unsupported = !store.replace ? `the ${store.kind} store has no replace operation` : store.replaceUnsupported;
    if (unsupported) {
      const copies = stores.length > 1 ? ` (it keeps a copy: CIPHERTEXT_STORES=${stores.map((s) => s.kind).join(',')})` : '';
      throw new CiphertextReplaceUnsupportedError(`key rotation cannot rewrap into this store: ${unsupported}${copies}`);
    }
  }
  const key = await deps.transit.keyVersions();
  return {
    keyName: deps.transit.keyName,
    latestVersion: key.latestVersion,
    minDecryptionVersion: key.minDecryptionVersion,
    storeKind: stores.map((store) => store.kind).join(','),
    custodianShares: deps.custodianShares !== undefined,
  };
}

/**
 * Adds a key version unless the key is past `expectedLatestVersion` already: a retry after a lost
 * response (or a resumed workflow) finds its own rotation done and does not add another.
 */
export async function rotateTransitKey(
  deps: KeyRotationDeps,
  input: { rotationId: string; expectedLatestVersion: number },
): Promise<{ latestVersion: number; rotated: boolean }> {
  const before = await deps.transit.keyVersions();
  if (before.latestVersion > input.expectedLatestVersion) {
    Context.current().log.info('Transit key already rotated', { rotationId: input.rotationId, latestVersion: before.latestVersion });
    return { latestVersion: before.latestVersion, rotated: false };
  }
  const after = await deps.transit.rotateKey();
  Context.current().log.info('Transit key rotated', { rotationId: input.rotationId, from: before.latestVersion, to: after.latestVersion });
  return { latestVersion: after.latestVersion, rotated: true };
}
