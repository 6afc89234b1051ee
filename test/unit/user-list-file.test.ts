import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readUserListFile, UserListFileError } from '../../client/user-list-file';
import { defaultBackupsPerMinute } from '../../client/batch-client';
import { SlidingWindowLimiter } from '../../simulator/rate-limiter';

const dir = mkdtempSync(join(tmpdir(), 'user-lists-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('readUserListFile', () => {
  it('reads one id per line, skipping blanks, comments and duplicates', () => {
    expect(readUserListFile(file('plain.txt', 'u1\n\n# a comment\nu2\r\nu1\n'))).toEqual(['u1', 'u2']);
  });
  it('reads the first column of a CSV and skips its header', () => {
    expect(readUserListFile(file('users.csv', 'userId,email\nu1,a@x\n"u2",b@x\n'))).toEqual(['u1', 'u2']);
  });
  it('reads JSON Lines', () => {
    expect(readUserListFile(file('users.jsonl', '{"userId":"u1"}\n{"userId":"u2","note":1}\n'))).toEqual(['u1', 'u2']);
  });
  it('names every bad line at once', () => {
    const error = (() => {
      try {
        readUserListFile(file('bad.txt', 'ok-1\nbad id\n{"userId": 5}\n{broken\n'));
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(UserListFileError);
    expect(error?.message).toMatch(/3 bad line\(s\)/);
    expect(error?.message).toMatch(/line 2: .*only letters/);
    expect(error?.message).toMatch(/line 3: userId must be a string/);
    expect(error?.message).toMatch(/line 4: not valid JSON/);
  });
  it('refuses an empty or missing file', () => {
    expect(() => readUserListFile(file('empty.txt', '\n# nothing\n'))).toThrow(/holds no user ids/);
    expect(() => readUserListFile(join(dir, 'nope.txt'))).toThrow(/cannot read/);
  });
});

describe('rate limits', () => {
  it("the default batch rate keeps within Portal's documented limits with headroom", () => {
    // 200 client-route calls/min ÷ 5 per backup = 40; 50 Enclave calls/min ÷ 1 = 50; × 0.75.
    expect(defaultBackupsPerMinute()).toBe(30);
    expect(defaultBackupsPerMinute({ enclavePerMinute: 10, clientPerMinute: 1000 })).toBe(7);
  });

  it('the simulator’s sliding window admits the limit per minute and says when to come back', () => {
    const limiter = new SlidingWindowLimiter(3);
    expect([0, 10, 20].map((t) => limiter.take(t).ok)).toEqual([true, true, true]);
    expect(limiter.take(30)).toEqual({ ok: false, retryAfterSeconds: 60 });
    expect(limiter.take(60_001).ok).toBe(true);
  });
});
