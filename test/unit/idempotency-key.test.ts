import { describe, expect, it } from 'vitest';
import { InvalidIdempotencyKeyError, parseIdempotencyKey } from '../../domain/idempotency-key';

describe('parseIdempotencyKey', () => {
  it.each(['k', '3f0c6a3e-4a52-4b1e-9d0c-2f1f7f1b9c11', '01HZX3K4Y8Q2M5N6P7R8S9T0VW', 'order:42/attempt', 'YWJj+ZGVm/Zw==', 'x'.repeat(128)])(
    'accepts %s',
    (key) => {
      expect(parseIdempotencyKey(key)).toBe(key);
    },
  );

  it.each([
    ['', /must not be empty/],
    ['x'.repeat(129), /129 characters long; the limit is 128/],
    ['has space', /character 4 is U\+0020/],
    ["k'; DROP TABLE runs;--", /character 2 is '''/],
    ['line\nbreak', /character 5 is U\+000A/],
    ['ünicode', /character 1 is U\+00FC/],
  ])('rejects %j, naming the rule and the first character refused', (key, message) => {
    expect(() => parseIdempotencyKey(key)).toThrow(InvalidIdempotencyKeyError);
    expect(() => parseIdempotencyKey(key)).toThrow(message);
    if (key.length > 0 && key.length <= 128) expect(() => parseIdempotencyKey(key)).toThrow(/letters, digits and \. _ : @ \+ \/ = -/);
  });

  it.each([undefined, null, 42, ['a', 'b']])('rejects the non-string %j', (value) => {
    expect(() => parseIdempotencyKey(value)).toThrow(/idempotencyKey must be a string/);
  });
});
