import { Command } from 'commander';
import { BackupActionRejectedError, connectBackupClient, type BackupClient } from './backup-client';
import { loadCliConfig } from './config';
import { BatchClient, defaultBackupsPerMinute, PORTAL_LIMITS } from './batch-client';
import { readUserListFile } from './user-list-file';
import type { BatchSource } from '../contracts/batch-backup-api';
import { print, printError, progressLine, setJsonOutput } from './cli-output';
import { registerDrillCommands } from './cli-drill';
import { registerKeysCommands } from './cli-keys';
import { registerRecoverCommands } from './cli-recover';
import { registerEjectCommands } from './cli-eject';
import { registerCoverageCommand } from './cli-coverage';
import { registerCopiesCommands } from './cli-copies';
import { registerListCommand } from './cli-list';
import { ClientError, clientErrorView } from './client-error';
import { registerDeployCommands } from './cli-deploy';
import { registerAuditCommands } from './cli-audit';
import { operatorSignerFromEnv } from './operator-signer';

/** `backup start|status|wait|retry|abandon <userId>`: the operator's and scripts' front end. */
const program = new Command('backup')
  .description('Start and steer MPC wallet backups (configuration: TEMPORAL_*, PAYLOAD_CODEC_* variables)')
  .option('--json', 'print results as JSON (for scripts) instead of a readable summary')
  .showHelpAfterError()
  .hook('preAction', (command) => setJsonOutput(Boolean(command.optsWithGlobals().json)));


/** `--by` of retry and abandon: still accepted so scripts keep working, but the signed operator (OPERATOR_NAME) is who acts. */
const DEPRECATED_BY = 'deprecated, ignored: the operator is OPERATOR_NAME, verified by its signature';

async function withClient(action: (client: BackupClient) => Promise<void>): Promise<void> {
  const client = await connectBackupClient(loadCliConfig());
  try {
    await action(client);
  } finally {
    await client.close();
  }
}

program
  .command('start')
  .argument('<userId>', "the company's user id")
  .option('--wait', 'wait for the backup to finish and print its result (exit code 3 at once if it parks)')
  .option('--idempotency-key <key>', 'names this request: the same key within 24 h returns the run it started instead of a new backup')
  .description('start a backup (or join the one running for this user)')
  .action((userId: string, options: { wait?: boolean; idempotencyKey?: string }) =>
    withClient(async (client) => {
      const started = await client.startBackupWorkflow(userId, options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey });
      if (!options.wait) return print(started);
      // One answer: the run that was started (or joined), then how it ended; the user id once.
      const { userId: _sameUser, ...result } = await client.waitUnlessParked(userId, { runId: started.runId });
      print({ ...started, result });
    }),
  );

program
  .command('status')
  .argument('<userId>')
  .description("show the user's latest backup: status, step, attempts, last error, pair ids")
  .action((userId: string) => withClient(async (client) => print(await client.getBackupStatus(userId))));

program
  .command('wait')
  .argument('<userId>')
  .description("wait for the user's current backup to finish; says at once when it is parked (exit code 3) and what to do")
  .action((userId: string) => withClient(async (client) => print(await client.waitUnlessParked(userId))));

program
  .command('retry')
  .argument('<userId>')
  .option('--by <name>', DEPRECATED_BY)
  .description('resume a backup parked as NEEDS_ATTENTION from the failed step (signed as OPERATOR_NAME with your own VAULT_TOKEN)')
  .action((userId: string) => withClient(async (client) => print(await client.retryBackup(userId, operatorSignerFromEnv()))));

program
  .command('abandon')
  .argument('<userId>')
  .requiredOption('--reason <text>', 'why the backup is given up (signed, and kept in its history)')
  .option('--by <name>', DEPRECATED_BY)
  .description('give up a backup parked as NEEDS_ATTENTION (signed as OPERATOR_NAME with your own VAULT_TOKEN)')
  .action((userId: string, options: { reason: string }) =>
    withClient(async (client) => print(await client.abandonBackup(userId, options.reason, operatorSignerFromEnv()))),
  );

program
  .command('list')
  .requiredOption('--status <status>', 'RUNNING, NEEDS_ATTENTION, COMPLETED, FAILED, ABANDONED or CANCELLED')
  .option('--limit <n>', 'at most this many, newest first', '100')
  .description('list backups by status; parked ones (NEEDS_ATTENTION) with their last error')
  .action((options: { status: string; limit: string }) =>
    withClient(async (client) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new BackupActionRejectedError('--limit must be a positive whole number');
      print(await client.listBackups({ status: options.status, limit }));
    }),
  );

const batch = program.command('batch').description('re-back-up many wallets at Portal’s rate limits');

function withBatches(action: (batches: BatchClient) => Promise<void>): Promise<void> {
  return withClient((client) => action(new BatchClient(client.temporal, client.taskQueue)));
}

registerListCommand(batch, 'batches', (action) => withBatches((batches) => action((options) => batches.list(options))));

batch
  .command('start')
  .description('start a batch over a list, a file or the backend’s paged user source')
  .option('--users <ids>', 'comma-separated user ids')
  .option('--file <path>', 'a file of user ids: one per line, CSV (first column) or JSON Lines ({"userId": …})')
  .option('--source <url>', 'the backend’s paged user list: GET url?cursor=…&limit=… → {userIds, nextCursor}')
  .option('--concurrency <n>', 'backups in flight at once', '20')
  .option('--rate <perMinute>', `backups started per minute (default ${defaultBackupsPerMinute()}: Portal's limits with headroom)`)
  .option('--enclave-rpm <n>', "the Enclave MPC API's limit your account has, requests per minute (default 50); sets the default rate")
  .option('--client-rpm <n>', "the client routes' limit your account has, requests per minute (default 200); sets the default rate")
  .option('--skip-since <isoTime>', 'skip users whose last completed backup is newer than this')
  .option('--id <batchId>', 'a batch id of your own (default: a random UUID)')
  .option('--wait', 'wait for the batch to finish and print its report')
  .action(
    (options: {
      users?: string;
      file?: string;
      source?: string;
      concurrency: string;
      rate?: string;
      enclaveRpm?: string;
      clientRpm?: string;
      skipSince?: string;
      id?: string;
      wait?: boolean;
    }) =>
      withBatches(async (batches) => {
        const chosen = [options.users, options.file, options.source].filter(Boolean).length;
        if (chosen !== 1) throw new BatchArgumentError('give exactly one of --users, --file or --source');
        const source: BatchSource = options.source
          ? { kind: 'http', url: options.source }
          : { kind: 'list', userIds: options.file ? readUserListFile(options.file) : options.users!.split(',').map((id) => id.trim()).filter(Boolean) };
        const skip = options.skipSince ? new Date(options.skipSince) : undefined;
        if (skip && Number.isNaN(skip.getTime())) throw new BatchArgumentError(`--skip-since: "${options.skipSince}" is not an ISO time`);
        const limits = {
          enclavePerMinute: Number(options.enclaveRpm ?? PORTAL_LIMITS.enclavePerMinute),
          clientPerMinute: Number(options.clientRpm ?? PORTAL_LIMITS.clientPerMinute),
        };
        if (!(limits.enclavePerMinute > 0 && limits.clientPerMinute > 0)) {
          throw new BatchArgumentError('--enclave-rpm and --client-rpm must be positive numbers');
        }
        const started = await batches.startBatch({
          source,
          concurrency: Number(options.concurrency),
          backupsPerMinute: options.rate ? Number(options.rate) : defaultBackupsPerMinute(limits),
          ...(skip ? { skipIfBackedUpSince: skip } : {}),
          ...(options.id ? { batchId: options.id } : {}),
        });
        print(started);
        if (options.wait) print(await batches.wait(started.batchId));
      }),
  );

batch
  .command('status')
  .argument('<batchId>')
  .option('--watch [seconds]', 'redraw a live progress line (bar, counts, rate, ETA) every few seconds until the batch ends')
  .description('progress: totals, completed, failed, parked, in flight, rate, ETA')
  .action((batchId: string, options: { watch?: boolean | string }) =>
    withBatches(async (batches) => {
      if (!options.watch) return print(await batches.status(batchId));
      const everyMs = Math.max(1, Number(options.watch === true ? 2 : options.watch)) * 1000;
      if (!Number.isFinite(everyMs)) throw new BatchArgumentError('--watch takes a number of seconds');
      const live = process.stdout.isTTY === true;
      for (;;) {
        const progress = await batches.status(batchId);
        const line = progressLine(progress);
        process.stdout.write(live ? `\r\x1b[2K${line}` : `${line}\n`);
        if ('finishedAt' in progress) {
          if (live) process.stdout.write('\n');
          return print(progress);
        }
        await new Promise((resolve) => setTimeout(resolve, everyMs));
      }
    }),
  );

batch
  .command('report')
  .argument('<batchId>')
  .description('every failed or parked user with its reason (the final report once done)')
  .action((batchId: string) => withBatches(async (batches) => print(await batches.report(batchId))));

// Signed as OPERATOR_NAME with the operator's own VAULT_TOKEN (any verified operator).
for (const [name, description] of [
  ['pause', 'stop starting new backups (those in flight finish); signed as OPERATOR_NAME'],
  ['resume', 'start backups again; signed as OPERATOR_NAME'],
] as const) {
  batch
    .command(name)
    .argument('<batchId>')
    .description(description)
    .action((batchId: string) => withBatches(async (batches) => print(await batches[name](batchId, operatorSignerFromEnv()))));
}

batch
  .command('cancel')
  .argument('<batchId>')
  .option('--reason <text>', 'why (signed, and kept in the audit trail)')
  .description('stop the batch: no new backups; those in flight finish; signed as OPERATOR_NAME')
  .action((batchId: string, options: { reason?: string }) => withBatches(async (batches) => print(await batches.cancel(batchId, operatorSignerFromEnv(), options.reason))));

batch
  .command('problems')
  .argument('<batchId>')
  .description('every backup the batch started that did not complete, with its reason (from visibility; any batch size)')
  .option('--limit <n>', 'list at most this many', '1000')
  .action((batchId: string, options: { limit: string }) =>
    withBatches(async (batches) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new BatchArgumentError('--limit must be a positive whole number');
      print(await batches.listProblems(batchId, limit));
    }),
  );

registerRecoverCommands(program, withClient);
registerDrillCommands(program, withClient);
registerKeysCommands(program, withClient);
registerEjectCommands(program, withClient);
registerCoverageCommand(program);
registerCopiesCommands(program);
registerDeployCommands(program, withClient);
registerAuditCommands(program);

/** A `batch` command given arguments that cannot work; the message says which. */
class BatchArgumentError extends ClientError {
  override readonly name = 'BatchArgumentError';
  readonly kind = 'invalid';
}

program.parseAsync(process.argv).catch((error: unknown) => {
  const view = clientErrorView(error);
  printError(view?.code ?? 'UnexpectedError', view?.message ?? (error instanceof Error ? error.message : String(error)));
  process.exit(view?.exitCode ?? 1);
});
