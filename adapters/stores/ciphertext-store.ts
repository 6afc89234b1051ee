import type { Curve } from '../../domain/curves';

/** Whose ciphertexts a call is about. Stores that need credentials load them themselves. */
export interface StoreContext {
  userId: string;
}

/** One curve's ciphertext of one backup, bound (by its Transit context) to the user and pair. */
export interface StoredCiphertext {
  curve: Curve;
  pairId: string;
  ciphertext: string;
}

export interface PutOptions {
  /**
   * True on the step's first attempt: the pairs were made by step 1 moments ago and were never
   * given to anyone, so nothing can be stored for them yet and a store may skip its write-once
   * check. On later attempts a store must check (an earlier attempt may have written them).
   */
  freshPairs: boolean;
}

/**
 * What `put` found: the pairs that already held exactly the given ciphertext when the store looked
 * (only when `freshPairs` is false). Nothing was written for them, and the store's own read of them
 * is their read-back, so a retried step verifies them without reading them again.
 */
export interface PutResult {
  alreadyStored: string[];
}

/**
 * What a compare-and-set replace found: `replaced` (the pair now holds the new ciphertext, also when
 * it already did), `changed` (it holds neither the expected old one nor the new one: nothing was
 * written), `absent` (it holds none: nothing was written).
 */
export type ReplaceOutcome = 'replaced' | 'changed' | 'absent';

/**
 * Where encrypted client backup shares live: Portal (Portal-Managed), the company's PostgreSQL, or
 * the company's HTTP endpoint; one file each, picked by CIPHERTEXT_STORE (ciphertext-store-factory).
 * The contract every store keeps:
 * - `put` is write-once per pair: the same ciphertext again is a no-op (named in `alreadyStored`); a
 *   different ciphertext for a pair that already has one throws CiphertextConflictError and
 *   overwrites nothing.
 * - `get` returns the ciphertext stored for the pair, or throws CiphertextNotFoundError when there
 *   is none (the step decides whether that means "not readable yet" or "lost").
 * - `replace` (key rotation only: a rewrap of the same plaintext under a newer key version) writes
 *   the new ciphertext only if the pair still holds `expectedOld`, and says what it found. It is the
 *   one exception to write-once, and only for a ciphertext that is already stored. A store that
 *   cannot do it safely leaves it out or names why in `replaceUnsupported`.
 * - Transient failures throw a retryable domain error; nothing here knows about Portal's errors
 *   unless the store is Portal.
 */
export interface CiphertextStore {
  readonly kind: string;
  put(context: StoreContext, ciphertexts: StoredCiphertext[], options: PutOptions): Promise<PutResult>;
  get(context: StoreContext, pairId: string, curve: Curve): Promise<string>;
  replace?(context: StoreContext, next: StoredCiphertext, expectedOld: string): Promise<ReplaceOutcome>;
  /** Why this store cannot replace (key rotation refuses to start), or undefined when it can. */
  readonly replaceUnsupported?: string;
}
