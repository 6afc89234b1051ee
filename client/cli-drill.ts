import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { BatchSource } from '../contracts/batch-backup-api';
import { defaultBackupsPerMinute } from './batch-client';
import { DEFAULT_DRILL_USERS_PER_MINUTE, DrillClient, DrillOptionsError, type DrillOptions } from './drill-client';
import { registerListCommand } from './cli-list';
import { print } from './cli-output';
import { operatorSignerFromEnv } from './operator-signer';
import { readUserListFile } from './user-list-file';

/** What the commands need of the CLI's client: BackupClient has both. */
export type WithClient = (action: (client: { temporal: Client; taskQueue: string }) => Promise<void>) => Promise<void>;

interface SourceFlags {
  users?: string;
  file?: string;
  source?: string;
  rate?: string;
  pageSize?: string;
}


function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!(number > 0) || !Number.isFinite(number)) throw new DrillOptionsError(`${flag} must be a positive number (got ${value})`);
  return number;
}

function drillOptions(flags: SourceFlags): DrillOptions {
  const chosen = [flags.users, flags.file, flags.source].filter(Boolean).length;
  if (chosen !== 1) throw new DrillOptionsError('give exactly one of --users, --file or --source');
  const source: BatchSource = flags.source
    ? { kind: 'http', url: flags.source }
    : { kind: 'list', userIds: flags.file ? readUserListFile(flags.file) : flags.users!.split(',').map((id) => id.trim()).filter(Boolean) };
  const usersPerMinute = positiveNumber('--rate', flags.rate);
  const pageSize = positiveNumber('--page-size', flags.pageSize);
  return { source, ...(usersPerMinute ? { usersPerMinute } : {}), ...(pageSize ? { pageSize } : {}) };
}

function withSourceFlags(command: Command): Command {
  return command
    .option('--users <ids>', 'comma-separated user ids')
    .option('--file <path>', 'a file of user ids: one per line, CSV (first column) or JSON Lines ({"userId": …})')
    .option('--source <url>', 'the backend’s paged user list: GET url?cursor=…&limit=… → {userIds, nextCursor}')
    .option('--rate <perMinute>', `users checked per minute (default ${DEFAULT_DRILL_USERS_PER_MINUTE}), so Vault, the store and Portal are not flooded`)
    .option('--page-size <n>', 'user ids fetched per page of the source (default 100)');
}

/**
 * `backup drill run|schedule|unschedule|report|rebackup`: the restore drill (workflows/restore-drill.ts).
 * Prints JSON like the other commands; errors are thrown to the CLI's own handler.
 */
export function registerDrillCommands(program: Command, withClient: WithClient): Command {
  const drill = program
    .command('drill')
    .description('restore drills: check that every completed backup would restore (never calls /v1/recover)');
  const withDrills = (action: (drills: DrillClient) => Promise<void>) => withClient((client) => action(new DrillClient(client.temporal, client.taskQueue)));
  registerListCommand(drill, 'drills', (action) => withDrills((drills) => action((options) => drills.list(options))));

  withSourceFlags(drill.command('run'))
    .description('run one drill now over a list, a file or the backend’s paged user source')
    .option('--id <drillId>', 'a drill id of your own (default: a random UUID); never reused')
    .option('--wait', 'wait for the drill to finish and print its report')
    .action((flags: SourceFlags & { id?: string; wait?: boolean }) =>
      withDrills(async (drills) => {
        const started = await drills.runOnce({ ...drillOptions(flags), ...(flags.id ? { drillId: flags.id } : {}) });
        print(started);
        if (flags.wait) print(await drills.wait(started.drillId));
      }),
    );

  withSourceFlags(drill.command('schedule'))
    .description('run the drill on a Temporal Schedule (again with the same id: updates it)')
    .requiredOption('--every <duration>', 'how often, e.g. 24h, 12h, 30m')
    .option('--id <scheduleId>', 'the schedule id (default restore-drill); its drills are drill-<scheduleId>-<time>')
    .option('--now', 'also run one drill now')
    .action((flags: SourceFlags & { every: string; id?: string; now?: boolean }) =>
      withDrills(async (drills) =>
        print(await drills.schedule({ ...drillOptions(flags), every: flags.every, ...(flags.id ? { scheduleId: flags.id } : {}), runNow: flags.now ?? false })),
      ),
    );

  drill
    .command('unschedule')
    .description('delete the drill schedule (a drill it started keeps running)')
    .option('--id <scheduleId>', 'the schedule id (default restore-drill)')
    .action((flags: { id?: string }) =>
      withDrills(async (drills) => {
        const deleted = await drills.unschedule(flags.id);
        print({ scheduleId: flags.id ?? 'restore-drill', deleted });
      }),
    );

  drill
    .command('resume')
    .argument('<drillId>', 'a drill that its user source paused (report shows sourceRefused)')
    .description('ask the user source again for the page it refused, once the source is fixed; signed as OPERATOR_NAME')
    .action((drillId: string) => withDrills(async (drills) => print(await drills.resume(drillId, operatorSignerFromEnv()))));

  drill
    .command('report')
    .argument('[drillId]', 'the drill (default: the most recently started one)')
    .option('--limit <n>', 'list at most this many failures', '10000')
    .description('counts and every failure with its reason (so far, while the drill runs)')
    .action((drillId: string | undefined, flags: { limit: string }) =>
      withDrills(async (drills) => {
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new DrillOptionsError('--limit must be a positive whole number');
        const id = drillId ?? (await drills.latestDrillId());
        if (!id) throw new DrillOptionsError('no drill has run yet: start one with `backup drill run` or `backup drill schedule`');
        print(await drills.report(id, limit));
      }),
    );

  drill
    .command('rebackup')
    .argument('<drillId>')
    .option('--concurrency <n>', 'backups in flight at once', '20')
    .option('--rate <perMinute>', `backups started per minute (default ${defaultBackupsPerMinute()}: Portal's limits with headroom)`)
    .description('start a batch re-backup over every user the drill found failing (one batch per 1,000 users)')
    .action((drillId: string, flags: { concurrency: string; rate?: string }) =>
      withDrills(async (drills) => {
        const backupsPerMinute = positiveNumber('--rate', flags.rate);
        print(await drills.rebackupFailures(drillId, { concurrency: Number(flags.concurrency), ...(backupsPerMinute ? { backupsPerMinute } : {}) }));
      }),
    );

  return drill;
}
