/** AES-256 keys by id: `activeKeyId` encrypts, every key decrypts, so keys can rotate. */
export interface KeyRing {
  activeKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

export class KeyRingError extends Error {
  override readonly name: string = 'KeyRingError';
}

/** Throws when a key is not 32 bytes or the active id is missing; `what` names the ring in messages. */
export function checkKeyRing(ring: KeyRing, what: string): void {
  for (const [id, key] of ring.keys) {
    if (key.length !== 32) throw new KeyRingError(`${what} key ${id} must be 32 bytes, got ${key.length}`);
  }
  if (!ring.keys.has(ring.activeKeyId)) {
    throw new KeyRingError(`the active ${what} key id ${ring.activeKeyId} is not in the key ring`);
  }
}
