import { join } from 'node:path';

/**
 * Where `npm run dev` keeps its logs, data and the files an operator's commands read
 * (`.stack/dev` in this checkout; `MPC_DEV_DIR` moves it, as the docs test does to run a stack of
 * its own beside a developer's). Every file name is written here once: the dev stack writes them,
 * the CLI's hints and `backup:dev` read them.
 */
export function devStackDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MPC_DEV_DIR || join(__dirname, '..', '.stack', 'dev');
}

export const DEV_STACK_FILES = {
  /** The CLI's settings (Temporal, the codec key; eject's Portal, credentials, store and database): `npm run backup:dev` reads it. */
  clientEnv: 'client.env',
  /** The HTTP API's bearer token. */
  apiToken: 'api-token',
  /** The company database's URL with its password (the stack prints it without). */
  databaseUrl: 'database-url',
  /** An auditor's settings for `backup audit verify|list`: the database and a verify-only Vault token. */
  auditEnv: 'audit.env',
} as const;

export function devStackFile(name: keyof typeof DEV_STACK_FILES, env: NodeJS.ProcessEnv = process.env): string {
  return join(devStackDir(env), DEV_STACK_FILES[name]);
}
