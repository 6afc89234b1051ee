import { readFileSync } from 'node:fs';
import { parseUserId } from '../domain/user-id';
import { ClientError } from './client-error';

export class UserListFileError extends ClientError {
  override readonly name = 'UserListFileError';
  readonly kind = 'invalid';
}

/**
 * Reads user ids from a file: one per line, the first column of a CSV (a header row of `userId`
 * or `user_id` is skipped), or JSON Lines with a `userId` field. Every id is validated; the
 * error names each bad line so the file can be fixed in one pass. Duplicates are dropped.
 */
export function readUserListFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserListFileError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const ids: string[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let candidate: unknown = line;
    if (line.startsWith('{')) {
      try {
        candidate = (JSON.parse(line) as { userId?: unknown }).userId;
      } catch {
        problems.push(`line ${index + 1}: not valid JSON`);
        return;
      }
    } else if (line.includes(',')) {
      candidate = line.split(',')[0]!.trim().replace(/^"(.*)"$/, '$1');
    }
    if (index === 0 && typeof candidate === 'string' && /^(user_?id)$/i.test(candidate)) return;
    try {
      ids.push(parseUserId(candidate));
    } catch (error) {
      problems.push(`line ${index + 1}: ${(error as Error).message}`);
    }
  });
  if (problems.length > 0) {
    throw new UserListFileError(`${path} has ${problems.length} bad line(s):\n  ${problems.slice(0, 20).join('\n  ')}`);
  }
  if (ids.length === 0) throw new UserListFileError(`${path} holds no user ids`);
  return [...new Set(ids)];
}
