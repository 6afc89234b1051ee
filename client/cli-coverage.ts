import { createWriteStream, writeFileSync, type WriteStream } from 'node:fs';
import axios from 'axios';
import type { Command } from 'commander';
import { z } from 'zod';
import { createCiphertextStores } from '../adapters/stores/ciphertext-store-factory';
import { HttpCredentialsSource } from '../adapters/credentials/credentials-source';
import { PortalClient } from '../adapters/portal/portal-client';
import { backendEnvProblems, backendEnvSchema, toCredentialsConfig, toPortalConfig, toStoreConfigs } from '../config/backend-config';
import { loadConfig } from '../config/load-config';
import { createDatabasePool } from '../db/pool';
import { connectBackupClient } from './backup-client';
import { loadCliConfig } from './config';
import { COVERAGE_CSV_HEADER, coverageCsvLine, coverageMetricsText, runCoverage, type CoverageDeps, type CoverageRow } from './coverage';
import { readUserListFile } from './user-list-file';
import { ClientError } from './client-error';

export class CoverageOptionsError extends ClientError {
  override readonly name = 'CoverageOptionsError';
  readonly kind = 'invalid';
}

const pageSchema = z.object({ userIds: z.array(z.string()), nextCursor: z.string().min(1).nullable().optional() });

/**
 * The company backend's paged user list (the batches' HTTP source: `GET url?limit=…&cursor=…` →
 * `{userIds, nextCursor}`), one page at a time, with the credentials source's header.
 */
export async function* httpUserPages(url: string, pageSize: number, header?: { name: string; value: string }): AsyncIterable<string[]> {
  let cursor: string | undefined;
  do {
    const response = await axios.get(url, {
      params: { limit: pageSize, ...(cursor ? { cursor } : {}) },
      headers: header ? { [header.name]: header.value } : {},
      timeout: 30_000,
      maxRedirects: 0,
    });
    const page = pageSchema.safeParse(response.data);
    if (!page.success) throw new CoverageOptionsError(`the user source ${url} returned a page that is not {userIds, nextCursor}`);
    yield page.data.userIds;
    cursor = page.data.nextCursor ?? undefined;
  } while (cursor);
}

/** The backend half of coverage (Portal, credentials, the store), read from the same variables as the workers. */
export function coverageBackend(env: NodeJS.ProcessEnv = process.env): { deps: Omit<CoverageDeps, 'temporal'>; credentialsHeader?: { name: string; value: string }; close(): Promise<void> } {
  const e = loadConfig(backendEnvSchema, env, backendEnvProblems);
  const portal = new PortalClient(toPortalConfig(e));
  const credentialsConfig = toCredentialsConfig(e);
  const credentials = new HttpCredentialsSource(credentialsConfig);
  const database = e.DATABASE_URL ? createDatabasePool(e.DATABASE_URL) : undefined;
  // Every store that keeps a copy (CIPHERTEXT_STORES), the primary first: each copy is reported.
  const copies = createCiphertextStores(toStoreConfigs(e), { portal, credentials, ...(database ? { database } : {}) });
  return {
    deps: { credentials, portal, store: copies[0]!, ...(copies.length > 1 ? { copies } : {}) },
    ...(credentialsConfig.authHeader ? { credentialsHeader: credentialsConfig.authHeader } : {}),
    close: async () => {
      await database?.end();
    },
  };
}

/** Writes rows as JSON Lines (a last `{"summary": …}` line) or CSV (the summary to stderr). */
function rowWriter(format: 'json' | 'csv', out: WriteStream | NodeJS.WriteStream) {
  const write = (line: string) =>
    new Promise<void>((resolve, reject) => {
      if (out.write(`${line}\n`)) resolve();
      else out.once('drain', resolve).once('error', reject);
    });
  return {
    start: () => (format === 'csv' ? write(COVERAGE_CSV_HEADER) : Promise.resolve()),
    row: (row: CoverageRow) => write(format === 'csv' ? coverageCsvLine(row) : JSON.stringify(row)),
    end: (summary: object) => (format === 'csv' ? (process.stderr.write(`${JSON.stringify({ summary })}\n`), Promise.resolve()) : write(JSON.stringify({ summary }))),
  };
}

export function registerCoverageCommand(program: Command): Command {
  return program
    .command('coverage')
    .description('every user of a source: the newest completed backup (when, each store\'s copy, KMS key version) and who has none, a stale one, a parked run, a drill failure or a copy missing from a store')
    .option('--users <ids>', 'comma-separated user ids')
    .option('--users-file <file>', 'user ids, one per line (or CSV / JSON Lines)')
    .option('--source-url <url>', "the backend's paged user list (GET url?limit=&cursor= → {userIds, nextCursor})")
    .option('--page-size <n>', 'users per page of --source-url', '500')
    .option('--format <format>', 'json (JSON Lines, a summary line last) or csv', 'json')
    .option('--max-age-days <days>', 'a newest completed backup older than this is STALE', '30')
    .option('--users-per-minute <n>', 'pace: users looked at per minute (each costs a Portal read and a read of each store that keeps a copy)', '600')
    .option('--out <file>', 'write the rows here instead of stdout')
    .option('--metrics-file <file>', 'also write the summary as Prometheus text (for a textfile collector)')
    .action(async (options: { users?: string; usersFile?: string; sourceUrl?: string; pageSize: string; format: string; maxAgeDays: string; usersPerMinute: string; out?: string; metricsFile?: string }) => {
      const problems: string[] = [];
      const sources = [options.users, options.usersFile, options.sourceUrl].filter((value) => value !== undefined);
      if (sources.length !== 1) problems.push('give exactly one of --users, --users-file, --source-url');
      if (options.format !== 'json' && options.format !== 'csv') problems.push('--format must be json or csv');
      const maxAgeDays = Number(options.maxAgeDays);
      if (!(maxAgeDays > 0)) problems.push('--max-age-days must be a positive number');
      const usersPerMinute = Number(options.usersPerMinute);
      if (!(Number.isInteger(usersPerMinute) && usersPerMinute >= 1 && usersPerMinute <= 60_000)) problems.push('--users-per-minute must be a whole number from 1 to 60000');
      const pageSize = Number(options.pageSize);
      if (!(Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= 10_000)) problems.push('--page-size must be a whole number from 1 to 10000');
      if (problems.length > 0) throw new CoverageOptionsError(problems.join('; '));
      const backend = coverageBackend();
      const client = await connectBackupClient(loadCliConfig());
      const out = options.out ? createWriteStream(options.out, { flags: 'wx', mode: 0o600 }) : process.stdout;
      try {
        const users: AsyncIterable<string[]> = options.sourceUrl
          ? httpUserPages(options.sourceUrl, pageSize, backend.credentialsHeader)
          : (async function* () {
              yield options.users ? options.users.split(',').map((id) => id.trim()).filter(Boolean) : readUserListFile(options.usersFile!);
            })();
        const writer = rowWriter(options.format as 'json' | 'csv', out);
        await writer.start();
        const summary = await runCoverage({ ...backend.deps, temporal: client.temporal }, users, { maxAgeMs: maxAgeDays * 86_400_000, usersPerMinute }, writer.row);
        await writer.end(summary);
        if (options.metricsFile) writeFileSync(options.metricsFile, coverageMetricsText(summary, Date.now()));
      } finally {
        if (out !== process.stdout) await new Promise((resolve) => (out as WriteStream).end(resolve));
        await client.close();
        await backend.close();
      }
    });
}
