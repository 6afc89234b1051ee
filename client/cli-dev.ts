import { existsSync } from 'node:fs';
import { devStackFile } from '../config/dev-stack-files';

/**
 * `npm run backup:dev -- <command>`: the CLI with the dev stack's settings (client.env) loaded
 * first. A variable already set in the shell wins, as with `node --env-file`, so an operator's own
 * VAULT_TOKEN is the one eject uses.
 */
const file = devStackFile('clientEnv');
if (!existsSync(file)) {
  process.stderr.write(`backup: no dev stack settings at ${file}: start the dev stack first (npm run dev)\n`);
  process.exit(2);
}
process.loadEnvFile(file);
// Loaded after the settings are in process.env.
void import('./cli');
