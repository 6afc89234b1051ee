import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupTestEnv, type BackupTestEnv } from '../support/backup-test-env';

let env: BackupTestEnv;

beforeAll(async () => {
  // A worker deployed with a Transit key name that does not exist in Vault.
  env = await createBackupTestEnv({ workerEnv: { VAULT_TRANSIT_KEY: 'no-such-key' } });
});
afterAll(() => env?.close());

describe('a worker with a wrong Vault Transit key name', () => {
  it('refuses to start (exit 2) and names the setting, instead of letting Vault create a new key', async () => {
    const worker = env.spawnWorker('wrong-key');
    expect(await worker.exited).toBe(2);
    const log = readFileSync(worker.logFile, 'utf8');
    expect(log).toContain('VAULT_TRANSIT_KEY: there is no Transit key "no-such-key"');
  });
});
