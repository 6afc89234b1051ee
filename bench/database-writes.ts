import { Client } from 'pg';

/** What a PostgreSQL did per backup over a measured part: committed transactions, rows written, WAL. */
export interface DatabaseWrites {
  commits: number;
  rowsWritten: number;
  walKiB: number;
}

/**
 * Counts one PostgreSQL's writes over a part of a run, for every database of the server: the
 * server's statistics (`pg_stat_database`: commits and rows inserted, updated or deleted) and the
 * WAL position (`pg_current_wal_lsn`), read before and after. A backend's statistics reach the view
 * up to 10 s after its last transaction, so `perBackup` waits that long before its reading. The
 * readings' own queries count (a few transactions over hundreds of backups). Readable by any role: no superuser needed.
 */
export async function startDatabaseWrites(url: string): Promise<{ perBackup(backups: number): Promise<DatabaseWrites> }> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const before = await readCounters(client);
  return {
    async perBackup(backups: number) {
      try {
        const after = await settledCounters(client);
        const per = (value: number) => Math.round((value / backups) * 10) / 10;
        return { commits: per(after.commits - before.commits), rowsWritten: per(after.rows - before.rows), walKiB: per((after.walBytes - before.walBytes) / 1024) };
      } finally {
        await client.end();
      }
    },
  };
}

interface Counters {
  commits: number;
  rows: number;
  walBytes: number;
}

async function readCounters(client: Client): Promise<Counters> {
  // The cache of a transaction's statistics snapshot would freeze the view inside one transaction; each query is its own.
  const { rows } = await client.query<{ commits: string; rows: string; wal: string }>(
    `SELECT sum(xact_commit)::text AS commits, sum(tup_inserted + tup_updated + tup_deleted)::text AS rows,
            (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS wal
       FROM pg_stat_database`,
  );
  const row = rows[0]!;
  return { commits: Number(row.commits), rows: Number(row.rows), walBytes: Number(row.wal) };
}

/**
 * The counters once every backend has flushed its statistics: an idle backend of PostgreSQL 15
 * flushes what it holds within PGSTAT_IDLE_INTERVAL (10 s) of its last transaction, and nothing
 * tells another session when that happened, so the reading waits that long once per part.
 */
async function settledCounters(client: Client): Promise<Counters> {
  await new Promise((resolve) => setTimeout(resolve, STATS_IDLE_FLUSH_MS));
  return readCounters(client);
}

/** PostgreSQL's PGSTAT_IDLE_INTERVAL (10 s) and a second to spare. */
const STATS_IDLE_FLUSH_MS = 11_000;
