import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { print } from './cli-output';
import { devStackFile } from '../config/dev-stack-files';
import { withDevStackHint } from './config';
import { openEjectRetrieval } from './eject';
import { loadEjectConfig } from './eject-config';

/**
 * `backup eject <userId> --reason … --out <file>`: the decrypted client backup shares of the
 * user's newest completed backup, written to a new file only its owner can read (never printed).
 * Runs with the caller's own Vault credentials (VAULT_TOKEN or AppRole) and the company database,
 * where the retrieval is recorded. Portal's eject libraries compute the private key from it and
 * the custodian backup share.
 */
export function registerEjectCommand(program: Command): Command {
  return program
    .command('eject')
    .argument('<userId>')
    .requiredOption('--reason <text>', 'why the shares are needed (e.g. the support ticket), kept in the audit record')
    .requiredOption('--out <file>', 'a new file for the shares (mode 0600; an existing file is never overwritten)')
    .description("retrieve the user's decrypted client backup shares for Portal's eject libraries (audited; your Vault policy must allow the decrypt)")
    .action(async (userId: string, options: { reason: string; out: string }) => {
      const config = loadEjectCliConfig();
      // The file before the release: an existing path fails here, before a release is audited that no file receives.
      const file = openSync(options.out, 'wx', 0o600);
      let written = false;
      try {
        const retrieval = await openEjectRetrieval(config);
        try {
          const release = await retrieval.getClientBackupShare(userId, { reason: options.reason });
          const document = { userId: release.userId, pairIds: release.pairIds, store: release.store, backupResponse: release.shares, releasedTo: release.releasedTo, releasedAt: release.releasedAt };
          writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
          written = true;
          print({ userId: release.userId, pairIds: release.pairIds, store: release.store, releasedTo: release.releasedTo, releasedAt: release.releasedAt, writtenTo: options.out });
        } finally {
          await retrieval.close();
        }
      } finally {
        closeSync(file);
        if (!written) rmSync(options.out, { force: true });
      }
    });
}

/** Eject's configuration; on a checkout with a dev stack, a missing setting comes with the dev stack's one command. */
function loadEjectCliConfig() {
  const howToRun = `\`VAULT_TOKEN=$(cat ${devStackFile('operatorVaultToken')}) npm run backup:dev -- eject <userId> --reason … --out <file>\` (the dev operator ops-eject's token: decrypt only)`;
  return withDevStackHint(() => loadEjectConfig(), devStackFile('clientEnv'), howToRun);
}
