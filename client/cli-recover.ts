import type { Command } from 'commander';
import type { BackupClient } from './backup-client';
import { print } from './cli-output';
import { registerListCommand } from './cli-list';
import { RecoveryClient } from './recovery-client';

type WithClient = (action: (client: BackupClient) => Promise<void>) => Promise<void>;

/** `backup recover start|status|wait|retry|abandon <userId>`: recovery from the newest completed backup. */
export function registerRecoverCommands(program: Command, withClient: WithClient): Command {
  const recover = program.command('recover').description("recover a user's wallet from its newest completed backup (new signing shares go to the backend)");
  const withRecoveries = (action: (recoveries: RecoveryClient) => Promise<void>) =>
    withClient((client) => action(new RecoveryClient(client.temporal, client.taskQueue)));
  registerListCommand(recover, 'recoveries', (action) => withRecoveries((recoveries) => action((options) => recoveries.list(options))));

  recover
    .command('start')
    .argument('<userId>')
    .option('--no-fresh-backup', 'do not start a fresh backup of the recovered wallet at the end')
    .option('--wait', 'wait for the recovery to finish and print its result')
    .description('start a recovery (or join the one running for this user); it waits for a running backup of the user')
    .action((userId: string, options: { freshBackup: boolean; wait?: boolean }) =>
      withRecoveries(async (recoveries) => {
        const started = await recoveries.startRecovery(userId, { freshBackup: options.freshBackup });
        print(started);
        if (options.wait) print(await recoveries.waitForRecovery(userId, started.runId));
      }),
    );

  recover
    .command('status')
    .argument('<userId>')
    .description("the user's latest recovery: status, step, attempts, last error, pair ids")
    .action((userId: string) => withRecoveries(async (recoveries) => print(await recoveries.getRecoveryStatus(userId))));

  recover
    .command('wait')
    .argument('<userId>')
    .description("wait for the user's recovery to finish")
    .action((userId: string) => withRecoveries(async (recoveries) => print(await recoveries.waitForRecovery(userId))));

  recover
    .command('retry')
    .argument('<userId>')
    .option('--by <name>', 'who is retrying, for the record')
    .description('resume a recovery parked as NEEDS_ATTENTION from the failed step')
    .action((userId: string, options: { by?: string }) => withRecoveries(async (recoveries) => print(await recoveries.retryRecovery(userId, options.by))));

  recover
    .command('abandon')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why the recovery is given up (kept in its history)')
    .option('--by <name>', 'who is abandoning, for the record')
    .description('give up a recovery parked as NEEDS_ATTENTION (new signing shares not yet handed over are lost: start a new recovery)')
    .action((userId: string, options: { reason: string; by?: string }) =>
      withRecoveries(async (recoveries) => print(await recoveries.abandonRecovery(userId, options.reason, options.by))),
    );
  return recover;
}
