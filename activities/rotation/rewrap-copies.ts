import { ciphertextVersion } from '../../adapters/kms/kms-ciphertext';
import type { KeyRotationDeps, RotationStore } from './key-rotation-deps';
import type { UserCheckpoint } from './rewrap-checkpoint';
import { digestOf, LeftAsIs, readStored, replace, request, rewrapTo, verifyReadBack, type CiphertextOutcome, type Found } from './rewrap-ciphertext';

/**
 * One pair's client ciphertext when several stores keep a copy (CIPHERTEXT_STORES=portal,postgres).
 *
 * The pair is rewrapped once and the same new ciphertext is written to every copy (each a
 * compare-and-set against that copy's own old ciphertext, read back and decrypted to the same
 * bytes), so the copies stay one ciphertext string, as a backup writes them: `backup copies
 * repair` and the drill take two different strings for a pair as a copy that diverges.
 *
 * Progress is per copy (the checkpoint names `client-ciphertext@<store>:<pairId>`): a retry reads
 * every copy again, and when one is on the target version already (an earlier attempt wrote it,
 * then failed before the others), that one is the ciphertext the others get, not a second rewrap.
 *
 * What each copy becomes (`CopyOutcome`):
 * - verified (rewrapped, or already on the target version), or failed with a reason, as with one store;
 * - `missing`: a pair of the user's newest completed backup (what recovery restores, the drill
 *   checks and repair recreates) whose copy another store holds, this one none. Reported as a
 *   failure naming the store (it blocks the raise); recreating it is `backup copies repair`'s job,
 *   never the rotation's.
 * - `absentElsewhere`: the same for any other pair (an older backup; pairs never marked: orphans of
 *   a failed backup, a backup in flight writing its copies). Counted, not a failure: nothing
 *   restores from it, and repair does not recreate it.
 * - every store without a copy: the pair has no ciphertext (counted once, as with one store).
 * A copy that decrypts to other bytes than the reference copy (the primary's, or the first that
 * decrypts) is left as it is: rewrapping it from the reference would overwrite what it holds.
 */
export type CopyOutcome = CiphertextOutcome | { missing: string } | { absentElsewhere: true } | { uncounted: true };

/** A copy as read before the pair's rewrap: its ciphertext and what it decrypts to, or why it cannot be used. */
type CopyRead = { store: RotationStore; absent: true } | { store: RotationStore; failed: string } | { store: RotationStore; stored: string; sha256: string };

/** A copy's name in the checkpoint's `done` list. */
export function copyKey(store: string, pairId: string): string {
  return `client-ciphertext@${store}:${pairId}`;
}

async function readCopy(deps: KeyRotationDeps, user: UserCheckpoint, entry: Found, store: RotationStore, opened: Map<string, string>): Promise<CopyRead> {
  try {
    const stored = await request(`could not be read from the ${store.kind} store`, () => readStored(deps, user, entry, store));
    if (stored === undefined) return { store, absent: true };
    // Copies are one string as a rule: decrypted once.
    const sha256 = opened.get(stored) ?? (await digestOf(deps, entry, stored, `the ${store.kind} copy does not decrypt in its context, left as it is (altered, or stored under another pair)`));
    opened.set(stored, sha256);
    return { store, stored, sha256 };
  } catch (error) {
    if (error instanceof LeftAsIs) return { store, failed: error.message };
    throw error;
  }
}

/**
 * The pair's copies not done yet, each reported through `copyDone` as soon as it is (the caller
 * saves the checkpoint there). Transient errors throw: the activity retries and resumes at the
 * first copy not reported.
 */
export async function rewrapCopies(
  deps: KeyRotationDeps,
  stores: readonly RotationStore[],
  user: UserCheckpoint,
  entry: Found,
  targetVersion: number,
  isDone: (store: string) => boolean,
  copyDone: (store: string, outcome: CopyOutcome) => void,
): Promise<void> {
  const opened = new Map<string, string>();
  const reads: CopyRead[] = [];
  for (const store of stores) reads.push(await readCopy(deps, user, entry, store, opened));
  const present = reads.filter((read): read is Extract<CopyRead, { stored: string }> => 'stored' in read);
  const left = reads.filter((read) => !isDone(read.store.kind));
  if (reads.every((read) => 'absent' in read)) {
    // No copy anywhere: the pair has no ciphertext (an orphan of a lost step-1 call), counted once.
    left.forEach((read, index) => copyDone(read.store.kind, index === 0 ? { absent: true } : { uncounted: true }));
    return;
  }
  const reference = present[0];
  // The stores that hold the pair's copy (readable or not).
  const holders = reads.filter((read) => !('absent' in read)).map((read) => read.store.kind).join(', ');
  let next: string | undefined;
  let rewrapFailed: string | undefined;
  for (const read of left) {
    let outcome: CopyOutcome;
    if ('absent' in read) {
      outcome = entry.newest ? { missing: `the ${read.store.kind} copy of the newest completed backup is missing (${holders} holds one): recreate it with \`backup copies repair\`` } : { absentElsewhere: true };
    } else if ('failed' in read) outcome = { failed: read.failed };
    else if (!reference || read.sha256 !== reference.sha256) {
      outcome = { failed: `the ${read.store.kind} copy decrypts to other bytes than the ${reference?.store.kind ?? '?'} copy (a copy that diverges); left as it is` };
    } else if ((ciphertextVersion(read.stored) ?? 0) >= targetVersion) outcome = { verified: 'alreadyCurrent' };
    else {
      if (next === undefined && rewrapFailed === undefined) ({ next, rewrapFailed } = await newCiphertext(deps, entry, present, reference, targetVersion));
      outcome = next === undefined ? { failed: rewrapFailed! } : await writeCopy(deps, user, entry, read, next, targetVersion);
    }
    copyDone(read.store.kind, outcome);
  }
}

/**
 * The new ciphertext every old copy gets: a copy already on the target version that decrypts to the
 * reference's bytes (an earlier attempt's, or a backup's since the rotation), else one rewrap of the reference.
 */
async function newCiphertext(
  deps: KeyRotationDeps,
  entry: Found,
  present: Extract<CopyRead, { stored: string }>[],
  reference: Extract<CopyRead, { stored: string }>,
  targetVersion: number,
): Promise<{ next?: string; rewrapFailed?: string }> {
  const current = present.find((read) => read.sha256 === reference.sha256 && (ciphertextVersion(read.stored) ?? 0) >= targetVersion);
  if (current) return { next: current.stored };
  try {
    return { next: await rewrapTo(deps, entry, reference.stored, targetVersion) };
  } catch (error) {
    if (error instanceof LeftAsIs) return { rewrapFailed: error.message };
    throw error;
  }
}

/** Compare-and-set of one copy from its old ciphertext to `next`, read back and verified. */
async function writeCopy(
  deps: KeyRotationDeps,
  user: UserCheckpoint,
  entry: Found,
  read: { store: RotationStore; stored: string; sha256: string },
  next: string,
  targetVersion: number,
): Promise<CopyOutcome> {
  const store = read.store;
  try {
    const replaced = await request(`could not be replaced in the ${store.kind} store`, () => replace(deps, user, entry, read.stored, next, store));
    if (replaced === 'absent') throw new LeftAsIs('was removed from its store during the rotation; nothing written');
    await verifyReadBack(deps, user, entry, { stored: read.stored, sha256: read.sha256 }, targetVersion, store);
    return { verified: 'rewrapped' };
  } catch (error) {
    if (error instanceof LeftAsIs) return { failed: `the ${store.kind} copy ${error.message}` };
    throw error;
  }
}
