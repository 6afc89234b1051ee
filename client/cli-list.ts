import type { Command } from 'commander';
import { print } from './cli-output';
import type { ListRunsOptions, RunListEntry } from './run-list';

/**
 * `<group> list [--status S] [--limit N]`, one shape for batches, recoveries, drills and key
 * rotations: newest first, with status, times and counts.
 */
export function registerListCommand(
  group: Command,
  what: string,
  withList: (action: (list: (options: ListRunsOptions) => Promise<RunListEntry[]>) => Promise<void>) => Promise<void>,
): void {
  group
    .command('list')
    .option('--status <status>', 'RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED or TIMED_OUT (recoveries also NEEDS_ATTENTION, ABANDONED)')
    .option('--limit <n>', 'at most this many, newest first', '20')
    .description(`list ${what}, newest first: status, times, counts`)
    .action((options: { status?: string; limit: string }) =>
      withList(async (list) => print(await list({ ...(options.status ? { status: options.status } : {}), limit: Number(options.limit) }))),
    );
}
