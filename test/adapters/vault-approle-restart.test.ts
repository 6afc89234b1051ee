import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { transitContext } from '../../adapters/kms/transit-context';
import { AppRoleAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { setUpAppRole, setUpTransit, startVaultServer, type VaultServer } from '../../stack/vault-server';

let vault: VaultServer;
let appRole: { roleId: string; secretId: string };

beforeAll(async () => {
  const dir = join(inject('runDir'), `vault-approle-${randomBytes(4).toString('hex')}`);
  vault = await startVaultServer({ dataDir: dir, logFile: join(dir, 'vault.log') });
  await setUpTransit(vault.addr, vault.rootToken);
  // Tokens live 3 s and at most 7 s: far shorter than the test, as a long backup would see.
  appRole = await setUpAppRole(vault.addr, vault.rootToken, { tokenTtl: '3s', tokenMaxTtl: '7s' });
});
afterAll(() => vault?.stop());

function appRoleTransit() {
  const auth = new AppRoleAuth(
    nodeVault({ endpoint: vault.addr, debug: () => undefined } as nodeVault.VaultOptions),
    { ...appRole, mountPoint: 'approle' },
  );
  const transit = new VaultTransit({ endpoint: vault.addr, mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 }, auth);
  return { auth, transit };
}

describe('Vault in production mode (file storage, unsealed), AppRole login', () => {
  it('keeps working past the token TTL and max TTL by renewing and logging in again', async () => {
    const { auth, transit } = appRoleTransit();
    const started = Date.now();
    let calls = 0;
    while (Date.now() - started < 12_000) {
      const [ciphertext] = await transit.encryptBatch([{ plaintext: Buffer.from('x'), context: transitContext('u', 'p') }]);
      expect(ciphertext).toMatch(/^vault:v1:/);
      calls += 1;
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    expect(calls).toBeGreaterThan(20);
    expect(auth.stats.renewals).toBeGreaterThanOrEqual(1);
    expect(auth.stats.logins).toBeGreaterThanOrEqual(2);
  });

  it('refuses a wrong secret id with a message naming the variables to check', async () => {
    const auth = new AppRoleAuth(nodeVault({ endpoint: vault.addr, debug: () => undefined } as nodeVault.VaultOptions), {
      roleId: appRole.roleId,
      secretId: 'not-the-secret',
      mountPoint: 'approle',
    });
    await expect(auth.token()).rejects.toThrow(/VAULT_ROLE_ID and VAULT_SECRET_ID/);
  });

  it('survives a SIGKILL and restart: keys persist, old ciphertexts still decrypt', async () => {
    const { transit } = appRoleTransit();
    const context = transitContext('u', 'restart');
    const [ciphertext] = await transit.encryptBatch([{ plaintext: Buffer.from('before restart'), context }]);
    await vault.restart();
    const [plaintext] = await transit.decryptBatch([{ ciphertext: ciphertext!, context }]);
    expect(String(plaintext)).toBe('before restart');
  });
});
