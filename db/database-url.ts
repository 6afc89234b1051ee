import { DatabaseRequestError } from './errors';

/**
 * Checks that `url` is a PostgreSQL connection URL (`postgres://` or `postgresql://`, with a host
 * and a database name). The error names what is wrong, never the URL itself: it may hold a password.
 */
export function parseDatabaseUrl(url: string, source = 'DATABASE_URL'): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DatabaseRequestError(`${source} is not a URL; expected postgres://user:password@host:port/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new DatabaseRequestError(`${source} must start with postgres:// or postgresql://`);
  }
  if (!parsed.hostname) throw new DatabaseRequestError(`${source} names no host`);
  if (parsed.pathname.replace(/^\//, '') === '') throw new DatabaseRequestError(`${source} names no database`);
  return parsed;
}

/** `postgres://user@host:port/database`: the URL for logs and messages, without password or parameters. */
export function describeDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${parsed.username}@` : '';
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparseable database URL)';
  }
}
