/** Who a ciphertext belongs to; a store uses what it needs (Portal needs the client API key). */
export interface StoreContext {
  userId: string;
  clientApiKey: string;
}

/**
 * Where encrypted backup shares live. Portal-Managed stores at Portal; a Self-Managed store (the
 * company's own database or endpoint) implements the same two calls. `put` must be idempotent:
 * writing the same ciphertext for the same pair twice is harmless.
 */
export interface CiphertextStore {
  readonly kind: string;
  put(context: StoreContext, pairId: string, ciphertext: string): Promise<void>;
  /** The ciphertext stored for the pair; throws a domain error when it cannot be read. */
  get(context: StoreContext, pairId: string): Promise<string>;
}
