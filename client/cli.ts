import { Command } from 'commander';
import { ConfigError } from '../config/config-error';
import { InvalidUserIdError } from '../domain/user-id';
import {
  BackupActionRejectedError,
  BackupFailedError,
  BackupNotFoundError, connectBackupClient, type BackupClient } from './backup-client';
import { loadClientConfig } from './config';

/** `backup start|status|wait|retry|abandon <userId>`: the operator's and scripts' front end. */
const program = new Command('backup')
  .description('Start and steer MPC wallet backups (configuration: TEMPORAL_*, PAYLOAD_CODEC_* variables)')
  .showHelpAfterError();

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function withClient(action: (client: BackupClient) => Promise<void>): Promise<void> {
  const client = await connectBackupClient(loadClientConfig());
  try {
    await action(client);
  } finally {
    await client.close();
  }
}

program
  .command('start')
  .argument('<userId>', "the company's user id")
  .option('--wait', 'wait for the backup to finish and print its result')
  .description('start a backup (or join the one running for this user)')
  .action((userId: string, options: { wait?: boolean }) =>
    withClient(async (client) => {
      const started = await client.startBackupWorkflow(userId);
      print(started);
      if (options.wait) print(await client.waitForBackup(userId, started.runId));
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
  .description("wait for the user's current backup to finish")
  .action((userId: string) => withClient(async (client) => print(await client.waitForBackup(userId))));

program
  .command('retry')
  .argument('<userId>')
  .option('--by <name>', 'who is retrying, for the record')
  .description('resume a backup parked as NEEDS_ATTENTION from the failed step')
  .action((userId: string, options: { by?: string }) =>
    withClient(async (client) => print(await client.retryBackup(userId, options.by))),
  );

program
  .command('abandon')
  .argument('<userId>')
  .requiredOption('--reason <text>', 'why the backup is given up (kept in its history)')
  .option('--by <name>', 'who is abandoning, for the record')
  .description('give up a backup parked as NEEDS_ATTENTION')
  .action((userId: string, options: { reason: string; by?: string }) =>
    withClient(async (client) => print(await client.abandonBackup(userId, options.reason, options.by))),
  );

program.parseAsync(process.argv).catch((error: unknown) => {
  const known =
    error instanceof ConfigError ||
    error instanceof InvalidUserIdError ||
    error instanceof BackupFailedError ||
    error instanceof BackupNotFoundError ||
    error instanceof BackupActionRejectedError;
  process.stderr.write(`backup: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(known ? 2 : 1);
});
