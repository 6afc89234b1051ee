import { Context } from '@temporalio/activity';
import { CiphertextReplaceUnsupportedError } from '../../domain/errors';
import type { KeyRotationDeps } from './key-rotation-deps';

export interface TransitKeyState {
  keyName: string;
  latestVersion: number;
  minDecryptionVersion: number;
  storeKind: string;
  custodianShares: boolean;
}

/** The key's versions, and whether the store can take a rewrap; refuses a store that cannot. */
export async function readTransitKey(deps: KeyRotationDeps): Promise<TransitKeyState> {
  const unsupported = !deps.store.replace ? `the ${deps.store.kind} store has no replace operation` : (deps.store.replaceUnsupported ?? copiesUnsupported(deps));
  if (unsupported) throw new CiphertextReplaceUnsupportedError(`key rotation cannot rewrap into this store: ${unsupported}`);
  const key = await deps.transit.keyVersions();
  return {
    keyName: deps.transit.keyName,
    latestVersion: key.latestVersion,
    minDecryptionVersion: key.minDecryptionVersion,
    storeKind: deps.store.kind,
    custodianShares: deps.custodianShares !== undefined,
  };
}

/** Rotation rewraps one store: copies in others would stay at older key versions and stop decrypting at the raise. */
function copiesUnsupported(deps: KeyRotationDeps): string | undefined {
  const kinds = (deps.copies ?? []).map((copy) => copy.kind);
  if (kinds.length <= 1) return undefined;
  return `copies are kept in ${kinds.join(', ')} (CIPHERTEXT_STORES) and rotation rewraps one store only (not built for copies yet)`;
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
