/**
 * An idempotency key names one request of a backend to start a backup: the same key again within
 * the window returns the run that request started instead of starting another backup. A start
 * without a key that arrives after the user's previous run closed begins a new backup, by design.
 * The key is not a secret (it is kept in the run's memo, which the payload codec encrypts), but it
 * comes from outside, so only a conservative alphabet is accepted. Pure module.
 */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 128;
const IDEMPOTENCY_KEY_ALPHABET = /^[A-Za-z0-9._:@+/=-]+$/;
export const IDEMPOTENCY_KEY_RULE = `1–${IDEMPOTENCY_KEY_MAX_LENGTH} characters of letters, digits and . _ : @ + / = - (a UUID, a ULID or base64 fit)`;

/** How long a key is remembered, from the start of the run it started (the namespace's retention must be at least this). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/** The HTTP header that carries the key (the API's start routes). */
export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

export class InvalidIdempotencyKeyError extends Error {
  override readonly name = 'InvalidIdempotencyKeyError';
}

export function parseIdempotencyKey(raw: unknown): string {
  if (typeof raw !== 'string') {
    throw new InvalidIdempotencyKeyError(`idempotencyKey must be a string, got ${raw === null ? 'null' : typeof raw}`);
  }
  if (raw.length === 0) throw new InvalidIdempotencyKeyError(`idempotencyKey must not be empty: ${IDEMPOTENCY_KEY_RULE}`);
  if (raw.length > IDEMPOTENCY_KEY_MAX_LENGTH) {
    throw new InvalidIdempotencyKeyError(`idempotencyKey is ${raw.length} characters long; the limit is ${IDEMPOTENCY_KEY_MAX_LENGTH}`);
  }
  if (!IDEMPOTENCY_KEY_ALPHABET.test(raw)) {
    // Names the first character refused, not the key (whatever a caller put there is not repeated into logs).
    const index = [...raw].findIndex((char) => !IDEMPOTENCY_KEY_ALPHABET.test(char));
    const char = [...raw][index]!;
    throw new InvalidIdempotencyKeyError(
      `idempotencyKey must be ${IDEMPOTENCY_KEY_RULE}; character ${index + 1} is ${/^[\x21-\x7e]$/.test(char) ? `'${char}'` : `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`}`,
    );
  }
  return raw;
}
