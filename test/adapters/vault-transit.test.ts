import { describe, expect, inject, it } from 'vitest';
import { transitContext } from '../../adapters/kms/transit-context';
import { StaticTokenAuth, type VaultAuth } from '../../adapters/vault/vault-auth';
import { VaultTransit } from '../../adapters/vault/vault-transit';
import { VaultPermissionError, VaultRequestError, VaultUnavailableError } from '../../domain/errors';

const config = () => ({ endpoint: inject('vaultAddr'), mount: 'transit', keyName: 'mpc-backup', timeoutMs: 2_000 });

class CountingAuth implements VaultAuth {
  reauthentications = 0;
  constructor(private readonly tokens: string[]) {}
  async token() {
    return this.tokens[0]!;
  }
  async reauthenticate() {
    this.reauthentications += 1;
    return this.tokens[Math.min(this.reauthentications, this.tokens.length - 1)]!;
  }
}

describe('VaultTransit against a real Vault', () => {
  it('encrypts a batch in one call and decrypts it back under the same contexts', async () => {
    const transit = new VaultTransit(config(), new StaticTokenAuth(inject('vaultToken')));
    const items = [
      { plaintext: Buffer.from('{"id":"p1","share":"YQ=="}'), context: transitContext('u1', 'p1') },
      { plaintext: Buffer.from('{"id":"p2","share":"Yg=="}'), context: transitContext('u1', 'p2') },
    ];
    const ciphertexts = await transit.encryptBatch(items);
    expect(ciphertexts).toHaveLength(2);
    const plaintexts = await transit.decryptBatch(ciphertexts.map((ciphertext, i) => ({ ciphertext, context: items[i]!.context })));
    expect(plaintexts.map(String)).toEqual(items.map((item) => String(item.plaintext)));
  });

  it('a ciphertext does not decrypt under another user’s context', async () => {
    const transit = new VaultTransit(config(), new StaticTokenAuth(inject('vaultToken')));
    const [ciphertext] = await transit.encryptBatch([{ plaintext: Buffer.from('x'), context: transitContext('u1', 'p1') }]);
    await expect(transit.decryptBatch([{ ciphertext: ciphertext!, context: transitContext('u2', 'p1') }])).rejects.toBeInstanceOf(
      VaultRequestError,
    );
  });

  it('a missing Transit key is a permanent error that names the setting to check', async () => {
    const transit = new VaultTransit({ ...config(), keyName: 'no-such-key' }, new StaticTokenAuth(inject('vaultToken')));
    const attempt = transit.decryptBatch([{ ciphertext: 'vault:v1:AAAA', context: transitContext('u', 'p') }]);
    await expect(attempt).rejects.toBeInstanceOf(VaultRequestError);
  });

  it('a 403 re-authenticates once: a fresh token succeeds, a second refusal is permanent', async () => {
    const recovering = new CountingAuth(['expired-token', inject('vaultToken')]);
    const transit = new VaultTransit(config(), recovering);
    await expect(transit.encryptBatch([{ plaintext: Buffer.from('x'), context: transitContext('u', 'p') }])).resolves.toHaveLength(1);
    expect(recovering.reauthentications).toBe(1);

    const hopeless = new CountingAuth(['bad-token', 'still-bad']);
    const refused = new VaultTransit(config(), hopeless);
    const attempt = refused.encryptBatch([{ plaintext: Buffer.from('x'), context: transitContext('u', 'p') }]);
    await expect(attempt).rejects.toBeInstanceOf(VaultPermissionError);
    expect(hopeless.reauthentications).toBe(1);
  });

  it('an unreachable Vault is retryable, and the error never carries the token', async () => {
    const token = inject('vaultToken');
    const transit = new VaultTransit({ ...config(), endpoint: 'http://127.0.0.1:1' }, new StaticTokenAuth(token));
    const error = await transit.encryptBatch([{ plaintext: Buffer.from('x'), context: 'eA==' }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VaultUnavailableError);
    expect(JSON.stringify(error) + String(error)).not.toContain(token);
  });
});
