import type { Command } from 'commander';
import type { BackupClient } from './backup-client';
import { print } from './cli-output';
import { registerListCommand } from './cli-list';
import { devStackFile } from '../config/dev-stack-files';
import { withDevStackHint } from './config';
import { collectEject } from './eject';
import { EjectClient } from './eject-client';
import { loadEjectCollectConfig } from './eject-config';
import { operatorSignerFromEnv } from './operator-signer';

type WithClient = (action: (client: BackupClient) => Promise<void>) => Promise<void>;

/**
 * `backup eject request|approve|reject|status|wait|list|collect`: a user's client backup shares for
 * Portal's eject libraries, under the two-person rule. The requester's `request` writes a one-time
 * key file and waits for RECOVERY_APPROVALS other operators to `approve` (signed with their own
 * Vault keys); a worker then seals the shares to that key in the company database, and `collect`
 * (the database and the key file, nothing else) writes them to a new owner-only file. No share
 * is printed, and none passes through Temporal.
 */
export function registerEjectCommands(program: Command, withClient: WithClient): Command {
  const eject = program.command('eject').description("a user's client backup shares for Portal's eject libraries, after two other operators approve");
  const withEjects = (action: (ejects: EjectClient) => Promise<void>) =>
    withClient((client) => action(new EjectClient(client.temporal, client.taskQueue, process.env.OPERATOR_NAME ? operatorSignerFromEnv() : undefined)));
  registerListCommand(eject, 'ejects', (action) => withEjects((ejects) => action((options) => ejects.list(options))));

  eject
    .command('request')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why the shares are needed (e.g. the support ticket): signed, and kept in the audit trail')
    .requiredOption('--key-out <file>', 'a new file for your one-time key (mode 0600): only it opens the release; keep it until you collect')
    .description('request the eject of the user\'s client backup shares, as OPERATOR_NAME: it waits for RECOVERY_APPROVALS other operators to approve')
    .action((userId: string, options: { reason: string; keyOut: string }) => withEjects(async (ejects) => print(await ejects.requestEject(userId, options.reason, options.keyOut))));

  eject
    .command('approve')
    .argument('<userId>')
    .description("approve the user's eject waiting for approval, as OPERATOR_NAME (an approver; not your own request; twice counts once)")
    .action((userId: string) => withEjects(async (ejects) => print(await ejects.approveEject(userId))));

  eject
    .command('reject')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why (signed, and kept in the run\'s failure and the audit trail)')
    .description("reject the user's eject waiting for approval (or withdraw your own request): it ends with your reason")
    .action((userId: string, options: { reason: string }) => withEjects(async (ejects) => print(await ejects.rejectEject(userId, options.reason))));

  eject
    .command('status')
    .argument('<userId>')
    .description("the user's latest eject: status, step, approvals, the release's pair ids and expiry")
    .action((userId: string) => withEjects(async (ejects) => print(await ejects.getEjectStatus(userId))));

  eject
    .command('wait')
    .argument('<userId>')
    .description("wait until the user's eject is released (or ends without a release)")
    .action((userId: string) => withEjects(async (ejects) => print(await ejects.waitForEject(userId))));

  eject
    .command('collect')
    .argument('<userId>')
    .requiredOption('--key <file>', 'the key file `eject request --key-out` wrote (deleted once collected)')
    .requiredOption('--out <file>', 'a new file for the shares (mode 0600; an existing file is never overwritten)')
    .description('write the released shares to a new owner-only file (once; needs DATABASE_URL and your key file, nothing else)')
    .action(async (userId: string, options: { key: string; out: string }) => print(await collectEject(userId, options, loadCollectCliConfig())));
  return eject;
}

/** collect's configuration; on a checkout with a dev stack, a missing setting comes with the dev stack's command. */
function loadCollectCliConfig() {
  const howToRun = '`npm run backup:dev -- eject collect <userId> --key <key file> --out <file>` (client.env holds the dev DATABASE_URL)';
  return withDevStackHint(() => loadEjectCollectConfig(), devStackFile('clientEnv'), howToRun);
}
