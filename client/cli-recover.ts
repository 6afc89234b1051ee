import type { Command } from 'commander';
import type { BackupClient } from './backup-client';
import { print } from './cli-output';
import { registerListCommand } from './cli-list';
import { RecoveryClient } from './recovery-client';
import { operatorSignerFromEnv } from './operator-signer';

type WithClient = (action: (client: BackupClient) => Promise<void>) => Promise<void>;

/**
 * `backup recover start|approve|reject|status|wait|retry|abandon <userId>`: recovery from the newest
 * completed backup, after the approvals of distinct operators. Operator acts are signed with the
 * caller's own Vault Transit key (OPERATOR_NAME, VAULT_ADDR, VAULT_TOKEN or AppRole).
 */
export function registerRecoverCommands(program: Command, withClient: WithClient): Command {
  const recover = program.command('recover').description("recover a user's wallet from its newest completed backup (new signing shares go to the backend)");
  const withRecoveries = (action: (recoveries: RecoveryClient) => Promise<void>) =>
    withClient((client) => action(new RecoveryClient(client.temporal, client.taskQueue, process.env.OPERATOR_NAME ? operatorSignerFromEnv() : undefined)));
  registerListCommand(recover, 'recoveries', (action) => withRecoveries((recoveries) => action((options) => recoveries.list(options))));

  recover
    .command('start')
    .argument('<userId>')
    .option('--no-fresh-backup', 'do not start a fresh backup of the recovered wallet at the end')
    .option('--wait', 'wait for the recovery to finish and print its result')
    .description('request a recovery (or join the one running for this user): it waits for RECOVERY_APPROVALS other operators to approve, then for a running backup of the user')
    .action((userId: string, options: { freshBackup: boolean; wait?: boolean }) =>
      withRecoveries(async (recoveries) => {
        const started = await recoveries.startRecovery(userId, { freshBackup: options.freshBackup });
        print(started);
        if (options.wait) print(await recoveries.waitForRecovery(userId, started.runId));
      }),
    );

  recover
    .command('approve')
    .argument('<userId>')
    .description("approve the user's recovery waiting for approval, as OPERATOR_NAME (signed with your own Vault key; not your own request; twice counts once)")
    .action((userId: string) => withRecoveries(async (recoveries) => print(await recoveries.approveRecovery(userId))));

  recover
    .command('reject')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why (signed, and kept in the run\'s failure)')
    .description("reject the user's recovery waiting for approval: it ends with your reason")
    .action((userId: string, options: { reason: string }) => withRecoveries(async (recoveries) => print(await recoveries.rejectRecovery(userId, options.reason))));

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
    .option('--by <name>', 'a note of who retries, for runs started before approvals (newer runs take only a signed retry: OPERATOR_NAME)')
    .description('resume a recovery parked as NEEDS_ATTENTION from the failed step (signed as OPERATOR_NAME, an approver)')
    .action((userId: string, options: { by?: string }) => withRecoveries(async (recoveries) => print(await recoveries.retryRecovery(userId, options.by))));

  recover
    .command('abandon')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why the recovery is given up (kept in its history)')
    .option('--by <name>', 'a note of who abandons, for runs started before approvals (newer runs take only a signed abandon: OPERATOR_NAME)')
    .description('give up a recovery parked as NEEDS_ATTENTION, signed as OPERATOR_NAME, an approver (new signing shares not yet handed over are lost: start a new recovery)')
    .action((userId: string, options: { reason: string; by?: string }) =>
      withRecoveries(async (recoveries) => print(await recoveries.abandonRecovery(userId, options.reason, options.by))),
    );
  return recover;
}
