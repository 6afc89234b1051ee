import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares a presented secret with every configured one (several during a rotation) in constant
 * time: both sides are hashed first, so neither a length nor a prefix leaks, and every configured
 * secret is compared whatever the outcome.
 */
export function matchesAnySecret(presented: string | undefined, secrets: readonly string[]): boolean {
  const digest = createHash('sha256').update(presented ?? '').digest();
  let matched = false;
  for (const secret of secrets) {
    const expected = createHash('sha256').update(secret).digest();
    matched = timingSafeEqual(digest, expected) || matched;
  }
  return presented !== undefined && matched;
}
