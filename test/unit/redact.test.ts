import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../../domain/redact';

describe('redactSecrets', () => {
  const base64Share = randomBytes(300).toString('base64');
  const hexShare = randomBytes(32).toString('hex');

  it('removes long base64 and hex runs, bearer keys, Vault tokens and share-shaped JSON members', () => {
    const text = redactSecrets(
      `rejected ${base64Share} and ${hexShare}; Authorization: Bearer abc-123; token hvs.CAESIJ3s8kQb9xY2ZwWq1rT5uVa; {"share":"short"}`,
    );
    for (const secret of [base64Share, hexShare, 'abc-123', 'hvs.CAESIJ3s8kQb9xY2ZwWq1rT5uVa', '"short"']) expect(text).not.toContain(secret);
    expect(text).toContain('Bearer [redacted]');
  });

  it('removes base64url runs from 40 characters, with - and _', () => {
    for (const length of [40, 48, 63]) {
      const run = `${'Ab-_'.repeat(16)}`.slice(0, length);
      expect(redactSecrets(`share ${run} end`)).toBe('share [redacted-base64url] end');
    }
  });

  it('keeps ids readable: pair ids, UUIDs and user ids', () => {
    const text = 'pair cmww28fv7dd58ecc19881bfd4 of user 5f0c1e9e-7c1b-4f5e-9a1d-2b3c4d5e6f70 (user-42@acme.example) failed with 503';
    expect(redactSecrets(text)).toBe(text);
  });
});
