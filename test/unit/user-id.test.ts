import { describe, expect, it } from 'vitest';
import { backupWorkflowId, InvalidUserIdError, parseUserId } from '../../domain/user-id';

describe('parseUserId', () => {
  it.each(['u1', 'user-42', 'alice@example.com', 'tenant:123', 'a.b_c-d', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(parseUserId(id)).toBe(id);
  });

  it.each([
    ['', /must not be empty/],
    ['x'.repeat(129), /129 characters long; the limit is 128/],
    ['has space', /only letters, digits/],
    ['../../etc/passwd', /must start with a letter or digit/],
    ["1'; DROP TABLE users;--", /only letters, digits/],
    ['<script>', /must start with a letter or digit/],
    ['user\n2', /only letters, digits/],
    ['ünicode', /must start with a letter or digit/],
  ])('rejects %j', (id, message) => {
    expect(() => parseUserId(id)).toThrow(InvalidUserIdError);
    expect(() => parseUserId(id)).toThrow(message);
  });

  it.each([undefined, null, 42, {}])('rejects the non-string %j', (value) => {
    expect(() => parseUserId(value)).toThrow(/userId must be a string/);
  });

  it('derives one workflow id per user', () => {
    expect(backupWorkflowId('u1')).toBe('backup-u1');
  });
});
