import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import type { BatchSource } from '../contracts/batch-backup-api';
import { PORTAL_LIMITS } from './batch-client';
import { defaultUsersPerMinute, KeysClient } from './keys-client';
import { print } from './cli-output';
import { registerListCommand } from './cli-list';
import { readUserListFile } from './user-list-file';
import { ClientError } from './client-error';
import { operatorSignerFromEnv } from './operator-signer';

/** A `keys` command given arguments that cannot work; the message says which. */
export class KeysArgumentError extends ClientError {
  override readonly name = 'KeysArgumentError';
  readonly kind = 'invalid';
}

/** What the CLI's withClient hands its actions: a connected Temporal client and the task queue. */
type WithClient = (action: (client: { temporal: Client; taskQueue: string }) => Promise<void>) => Promise<void>;


function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!(number > 0)) throw new KeysArgumentError(`${name} must be a positive number (got "${value}")`);
  return number;
}

function whole(value: string | undefined, name: string): number | undefined {
  const number = positive(value, name);
  if (number !== undefined && !Number.isInteger(number)) throw new KeysArgumentError(`${name} must be a whole number (got "${value}")`);
  return number;
}

/**
 * `backup keys rotate|status|report|pause|resume|cancel`: rotate the Transit key and rewrap every
 * stored ciphertext (see workflows/rotate-keys.ts). Registered on the CLI's program with its own
 * withClient.
 */
export function registerKeysCommands(program: Command, withClient: WithClient): Command {
  const keys = program.command('keys').description('rotate the Vault Transit key and rewrap every stored ciphertext');
  const withKeys = (action: (client: KeysClient) => Promise<void>) => withClient((client) => action(new KeysClient(client.temporal, client.taskQueue)));
  registerListCommand(keys, 'key rotations', (action) => withKeys((client) => action((options) => client.list(options))));

  keys
    .command('rotate')
    .description('add a key version, rewrap every ciphertext of the users given (and their custodian shares), verify each; signed as OPERATOR_NAME, an approver (RECOVERY_APPROVERS)')
    .option('--users <ids>', 'comma-separated user ids')
    .option('--file <path>', 'a file of user ids: one per line, CSV (first column) or JSON Lines ({"userId": …})')
    .option('--source <url>', 'the backend’s paged user list: GET url?cursor=…&limit=… → {userIds, nextCursor}')
    .option('--rate <perMinute>', `users visited per minute (default ${defaultUsersPerMinute()}: Portal's client-route limit with headroom)`)
    .option('--client-rpm <n>', "the client routes' limit your account has, requests per minute (default 200); sets the default rate")
    .option('--concurrency <n>', 'rewrap activities in flight', '2')
    .option('--users-per-activity <n>', 'users per rewrap activity (default 10, at most the rate)')
    .option('--raise-min-version', "once every ciphertext is verified on the new version, raise the key's min_decryption_version to it")
    .option('--every-user', 'the source lists every user with a backup (needed to raise the minimum over the Portal or HTTP store, which cannot be listed)')
    .option('--no-rotate', 'add no key version: rewrap to the latest one (after a rotation made by hand, or for users a first pass missed)')
    .option('--backup-task-queue <queue>', 'before raising the minimum, look for running backups only on this queue (default: every queue of the namespace)')
    .option('--id <rotationId>', 'a rotation id of your own (default: a random UUID)')
    .option('--wait', 'wait for the rotation to finish and print its report')
    .action(
      (options: {
        users?: string;
        file?: string;
        source?: string;
        rate?: string;
        clientRpm?: string;
        concurrency: string;
        usersPerActivity?: string;
        raiseMinVersion?: boolean;
        everyUser?: boolean;
        rotate: boolean;
        id?: string;
        backupTaskQueue?: string;
        wait?: boolean;
      }) =>
        withKeys(async (client) => {
          const chosen = [options.users, options.file, options.source].filter(Boolean).length;
          if (chosen !== 1) throw new KeysArgumentError('give exactly one of --users, --file or --source: the users whose ciphertexts are rewrapped');
          const source: BatchSource = options.source
            ? { kind: 'http', url: options.source }
            : { kind: 'list', userIds: options.file ? readUserListFile(options.file) : options.users!.split(',').map((id) => id.trim()).filter(Boolean) };
          const clientRpm = positive(options.clientRpm, '--client-rpm');
          const usersPerMinute = positive(options.rate, '--rate') ?? defaultUsersPerMinute({ ...PORTAL_LIMITS, ...(clientRpm ? { clientPerMinute: clientRpm } : {}) });
          const usersPerActivity = whole(options.usersPerActivity, '--users-per-activity');
          const started = await client.rotate({
            source,
            usersPerMinute,
            concurrency: whole(options.concurrency, '--concurrency')!,
            ...(usersPerActivity ? { usersPerActivity } : {}),
            raiseMinDecryptionVersion: options.raiseMinVersion === true,
            everyUser: options.everyUser === true,
            rotate: options.rotate,
            ...(options.id ? { rotationId: options.id } : {}),
            ...(options.backupTaskQueue ? { backupTaskQueue: options.backupTaskQueue } : {}),
          }, operatorSignerFromEnv());
          print(started);
          if (options.wait) print(await client.wait());
        }),
    );

  keys
    .command('status')
    .description('the latest rotation: key versions, counts, rate, ETA, deferred users, retrying activities; its report once done')
    .action(() => withKeys(async (client) => print(await client.status())));

  keys
    .command('report')
    .description('wait for the latest rotation to finish and print its report')
    .action(() => withKeys(async (client) => print(await client.wait())));

  keys
    .command('failures')
    .description('the most recent failures of the running rotation, each with its user, pair and reason')
    .action(() => withKeys(async (client) => print(await client.failures())));

  // Signed as OPERATOR_NAME with the operator's own VAULT_TOKEN (any verified operator).
  for (const [name, description] of [
    ['pause', 'stop visiting users (activities in flight finish); signed as OPERATOR_NAME'],
    ['resume', 'visit users again; signed as OPERATOR_NAME'],
  ] as const) {
    keys
      .command(name)
      .description(description)
      .action(() => withKeys(async (client) => print(await client[name](operatorSignerFromEnv()))));
  }
  keys
    .command('cancel')
    .option('--reason <text>', 'why (signed, and kept in the audit trail)')
    .description('stop the rotation: activities in flight finish; min_decryption_version is not raised; signed as OPERATOR_NAME')
    .action((options: { reason?: string }) => withKeys(async (client) => print(await client.cancel(operatorSignerFromEnv(), options.reason))));
  return keys;
}
