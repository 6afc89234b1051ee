import type { Curve } from '../../domain/curves';
import { CiphertextNotFoundError, CiphertextReplaceUnsupportedError } from '../../domain/errors';
import { ciphertextVersion } from '../../adapters/kms/kms-ciphertext';
import { sha256Hex } from '../share-plaintext';
import type { KeyRotationDeps, RotationStore } from './key-rotation-deps';
import type { UserCheckpoint } from './rewrap-checkpoint';
import { mustRetry, reasonOf } from './rotation-boundary';

/**
 * One ciphertext's rewrap, start to end (rewrap-users.ts walks the users and their ciphertexts).
 * Plaintexts exist only here, as Buffers hashed and zeroed at once; what leaves is an outcome.
 */

/** One ciphertext of a user, as listed before its rewrap. */
export interface Found {
  kind: 'client-ciphertext' | 'custodian-share';
  pairId: string;
  curve?: Curve;
  /** With copies: a pair of the newest completed backup. */
  newest?: boolean;
  backupMethod?: string;
  context: string;
  /** Custodian shares: the ciphertext as listed (client ciphertexts are read from their store, one at a time). */
  stored?: string;
  /** Custodian shares: the SHA-256 the webhook recorded of the share Portal sent. */
  recordedSha256?: string;
}

/** What became of one ciphertext: verified on the target version, reported and left as it is, or absent from the store. */
export type CiphertextOutcome = { verified: 'rewrapped' | 'alreadyCurrent' } | { failed: string } | { absent: true };

/** A ciphertext that is reported and left as it is (the reason says why); the rewrap goes on with the next one. */
export class LeftAsIs extends Error {}

/** Runs one request of a ciphertext's rewrap: a transient error retries the activity, a permanent one leaves the ciphertext as it is. */
export async function request<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (mustRetry(error)) throw error;
    throw new LeftAsIs(`${what}: ${reasonOf(error)}`);
  }
}

/** The ciphertext stored now (a client ciphertext: in `store`, by default the primary), or undefined when there is none. */
export async function readStored(deps: KeyRotationDeps, user: UserCheckpoint, entry: Found, store: RotationStore = deps.store): Promise<string | undefined> {
  if (entry.kind === 'client-ciphertext') {
    try {
      return await store.get({ userId: user.userId }, entry.pairId, entry.curve!);
    } catch (error) {
      if (error instanceof CiphertextNotFoundError) return undefined;
      throw error;
    }
  }
  return (await deps.custodianShares!.getByPair(user.clientId, entry.pairId)).find((row) => row.backupMethod === entry.backupMethod)?.encryptedShare;
}

/** The SHA-256 of what `ciphertext` decrypts to in the entry's context (the plaintext is zeroed at once). */
export async function digestOf(deps: KeyRotationDeps, entry: Found, ciphertext: string, ifNot: string): Promise<string> {
  const [outcome] = await deps.transit.decryptEach([{ ciphertext, context: entry.context }]);
  if (!outcome || 'error' in outcome) throw new LeftAsIs(`${ifNot}: ${outcome?.error ?? 'no result'}`);
  const digest = sha256Hex(outcome.plaintext);
  outcome.plaintext.fill(0);
  return digest;
}

/** The KMS's rewrap of one ciphertext, checked to be of the target version. */
export async function rewrapTo(deps: KeyRotationDeps, entry: Found, stored: string, targetVersion: number): Promise<string> {
  const [outcome] = await deps.transit.rewrapEach([{ ciphertext: stored, context: entry.context }], targetVersion);
  if (!outcome || 'error' in outcome) throw new LeftAsIs(`Vault could not rewrap it: ${outcome?.error ?? 'no result'}`);
  const version = ciphertextVersion(outcome.ciphertext);
  if (version !== targetVersion) throw new LeftAsIs(`Vault rewrapped it to version ${version ?? '?'}, not ${targetVersion}; not written`);
  return outcome.ciphertext;
}

/** Compare-and-set of one ciphertext in its store. 'changed': another writer (an earlier attempt of this rotation) was first; the read-back decides. */
export async function replace(
  deps: KeyRotationDeps,
  user: UserCheckpoint,
  entry: Found,
  old: string,
  next: string,
  store: RotationStore = deps.store,
): Promise<'replaced' | 'changed' | 'absent'> {
  if (entry.kind === 'client-ciphertext') {
    if (!store.replace) throw new CiphertextReplaceUnsupportedError(`the ${store.kind} store cannot replace a ciphertext`);
    return store.replace({ userId: user.userId }, { curve: entry.curve!, pairId: entry.pairId, ciphertext: next }, old);
  }
  if (await deps.custodianShares!.replaceIfUnchanged(user.clientId, entry.backupMethod!, entry.pairId, old, next)) return 'replaced';
  const now = await readStored(deps, user, entry);
  if (now === undefined) return 'absent';
  return now === next ? 'replaced' : 'changed';
}

/** Reads the rewrapped ciphertext back, checks its version, decrypts it and compares the digest with the one it replaced. */
export async function verifyReadBack(
  deps: KeyRotationDeps,
  user: UserCheckpoint,
  entry: Found,
  old: { stored: string; sha256: string },
  targetVersion: number,
  store: RotationStore = deps.store,
): Promise<void> {
  const stored = await request('could not be read back', () => readStored(deps, user, entry, store));
  if (stored === undefined) throw new LeftAsIs('is gone from its store after the rewrap');
  const version = ciphertextVersion(stored) ?? 0;
  if (version < targetVersion) {
    throw new LeftAsIs(stored === old.stored ? 'still holds the old ciphertext: another writer changed it in between' : `holds a ciphertext of version ${version || '?'} after the rewrap`);
  }
  const digest = await digestOf(deps, entry, stored, 'the rewrapped ciphertext read back does not decrypt in its context');
  if (digest !== old.sha256) throw new LeftAsIs('the rewrapped ciphertext read back does not decrypt to the same bytes as the one it replaced');
}

/**
 * One ciphertext, start to end: read it, decrypt it in its context (its digest is what the
 * rewrapped one must decrypt to), and unless it is on the target version already, rewrap it,
 * write it back if unchanged, read it back and verify it. Transient errors throw (the activity
 * retries and resumes at this ciphertext); anything else is this ciphertext's outcome.
 */
export async function rewrapCiphertext(deps: KeyRotationDeps, user: UserCheckpoint, entry: Found, targetVersion: number): Promise<CiphertextOutcome> {
  try {
    const stored = entry.stored ?? (await request(`could not be read from the ${deps.store.kind} store`, () => readStored(deps, user, entry)));
    if (stored === undefined) return { absent: true };
    const sha256 = await digestOf(deps, entry, stored, 'does not decrypt in its context, left as it is (altered, or stored under another pair)');
    if (entry.recordedSha256 !== undefined && sha256 !== entry.recordedSha256) {
      throw new LeftAsIs('decrypts to a share whose SHA-256 is not the one recorded when Portal delivered it; left as it is');
    }
    // Read and decrypted in its context just now: verified on the new version as it is.
    if ((ciphertextVersion(stored) ?? 0) >= targetVersion) return { verified: 'alreadyCurrent' };
    const next = await rewrapTo(deps, entry, stored, targetVersion);
    const replaced = await request('could not be replaced', () => replace(deps, user, entry, stored, next));
    if (replaced === 'absent') throw new LeftAsIs('it was removed from its store during the rotation; nothing written');
    await verifyReadBack(deps, user, entry, { stored, sha256 }, targetVersion);
    return { verified: 'rewrapped' };
  } catch (error) {
    if (error instanceof LeftAsIs) return { failed: error.message };
    throw error;
  }
}
