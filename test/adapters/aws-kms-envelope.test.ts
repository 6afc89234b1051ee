import { randomBytes } from 'node:crypto';
import { GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { AwsKmsEnvelope } from '../../adapters/kms/aws-kms-envelope';
import { ciphertextFormat, ciphertextVersion, isBelowMinDecryptionVersion } from '../../adapters/kms/kms-ciphertext';
import { custodianShareContext, transitContext } from '../../adapters/kms/transit-context';
import { ConfigError } from '../../config/config-error';
import { KmsPermissionError, KmsRequestError, KmsUnavailableError } from '../../domain/errors';
import { freePort } from '../../stack/free-port';
import { LOCAL_KMS_CREDENTIALS, LOCAL_KMS_REGION, localKmsClient, setUpAwsKmsKey } from '../../stack/local-kms-server';
import { TcpFaultProxy } from '../../stack/tcp-fault-proxy';

const clients: KMSClient[] = [];
afterAll(() => clients.forEach((client) => client.destroy()));

/** A key alias of this test's own (version 1 created), and the provider on it. */
async function freshKey(options: { endpoint?: string; client?: KMSClient } = {}) {
  const keyAlias = `alias/envelope-test/${randomBytes(6).toString('hex')}`;
  await setUpAwsKmsKey(inject('kmsEndpoint'), keyAlias);
  const endpoint = options.endpoint ?? inject('kmsEndpoint');
  const client = options.client ?? localKmsClient(endpoint);
  clients.push(client);
  return { keyAlias, kms: new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint, keyAlias, timeoutMs: 2_000 }, undefined, client) };
}

const share = (pairId: string) => Buffer.from(JSON.stringify({ id: pairId, share: 'c2hhcmU=' }), 'utf8');

describe('AwsKmsEnvelope against a real local-kms', () => {
  it('encrypts each share under a data key of its own and decrypts it back only in its context', async () => {
    const { kms } = await freshKey();
    const items = [
      { plaintext: share('p1'), context: transitContext('u1', 'p1') },
      { plaintext: share('p2'), context: transitContext('u1', 'p2') },
    ];
    const ciphertexts = await kms.encryptBatch(items);
    for (const ciphertext of ciphertexts) {
      expect(ciphertext).toMatch(/^awskms:e1:v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
      expect(ciphertextFormat(ciphertext)).toBe('aws-kms-e1');
      expect(ciphertextVersion(ciphertext)).toBe(1);
      expect(ciphertext).not.toContain(Buffer.from('c2hhcmU=').toString('base64'));
    }
    // Two shares, two data keys: the encrypted data keys differ.
    expect(ciphertexts[0]!.split(':')[3]).not.toBe(ciphertexts[1]!.split(':')[3]);
    const plaintexts = await kms.decryptBatch(ciphertexts.map((ciphertext, i) => ({ ciphertext, context: items[i]!.context })));
    expect(plaintexts.map(String)).toEqual(items.map((item) => String(item.plaintext)));

    const [otherUser, otherPair, custodian, right] = await kms.decryptEach([
      { ciphertext: ciphertexts[0]!, context: transitContext('u2', 'p1') },
      { ciphertext: ciphertexts[0]!, context: transitContext('u1', 'p2') },
      { ciphertext: ciphertexts[0]!, context: custodianShareContext('u1', 'p1') },
      { ciphertext: ciphertexts[0]!, context: items[0]!.context },
    ]);
    expect(otherUser).toMatchObject({ error: expect.stringContaining('another user or pair') });
    expect(otherPair).toMatchObject({ error: expect.stringContaining('another user or pair') });
    expect(custodian).toMatchObject({ error: expect.any(String) });
    expect(right).toEqual({ plaintext: items[0]!.plaintext });
    await expect(kms.decryptBatch([{ ciphertext: ciphertexts[0]!, context: transitContext('u2', 'p1') }])).rejects.toBeInstanceOf(KmsRequestError);
  });

  it('an altered ciphertext, a data ciphertext moved to another envelope, or a forged version does not decrypt', async () => {
    const { kms } = await freshKey();
    const context = transitContext('u1', 'p1');
    const [a, b] = await kms.encryptBatch([
      { plaintext: share('p1'), context },
      { plaintext: share('p1'), context },
    ]);
    const parts = a!.split(':');
    const sealed = Buffer.from(parts[5]!, 'base64');
    sealed[0] = sealed[0]! ^ 1;
    const altered = [...parts.slice(0, 5), sealed.toString('base64')].join(':');
    const swapped = [...parts.slice(0, 3), b!.split(':')[3], ...parts.slice(4)].join(':');
    const forgedVersion = a!.replace('awskms:e1:v1:', 'awskms:e1:v7:');
    const results = await kms.decryptEach([altered, swapped, forgedVersion, 'vault:v1:abc'].map((ciphertext) => ({ ciphertext, context })));
    expect(results.map((result) => 'error' in result)).toEqual([true, true, true, true]);
    expect(results[0]).toMatchObject({ error: expect.stringContaining('authentication failed') });
    expect(results[3]).toMatchObject({ error: expect.stringContaining('not an AWS KMS envelope') });
  });

  it('zeroes the plaintext data key KMS returned once the share is encrypted', async () => {
    const base = localKmsClient(inject('kmsEndpoint'));
    const handedOut: Uint8Array[] = [];
    const watching = {
      config: base.config,
      destroy: () => base.destroy(),
      send: async (command: unknown) => {
        const result = (await base.send(command as never)) as { Plaintext?: Uint8Array };
        if (command instanceof GenerateDataKeyCommand && result.Plaintext) handedOut.push(result.Plaintext);
        return result;
      },
    } as unknown as KMSClient;
    const { kms } = await freshKey({ client: watching });
    await kms.encryptBatch([{ plaintext: share('p1'), context: transitContext('u1', 'p1') }]);
    expect(handedOut).toHaveLength(1);
    expect(handedOut[0]!.length).toBe(32);
    expect([...handedOut[0]!].every((byte) => byte === 0)).toBe(true);
  });

  it('rotation: a new KMS key per version, ReEncrypt of the data key only, and a raised minimum refuses older versions by name', async () => {
    const { kms } = await freshKey();
    const context = transitContext('u1', 'p1');
    const [v1] = await kms.encryptBatch([{ plaintext: share('p1'), context }]);
    expect(await kms.keyVersions()).toEqual({ latestVersion: 1, minDecryptionVersion: 1, minEncryptionVersion: 0 });
    expect((await kms.rotateKey()).latestVersion).toBe(2);
    const [newer] = await kms.encryptBatch([{ plaintext: share('p1'), context }]);
    expect(ciphertextVersion(newer!)).toBe(2);

    const [rewrapped, wrongContext] = await kms.rewrapEach([
      { ciphertext: v1!, context },
      { ciphertext: v1!, context: transitContext('u1', 'p2') },
    ], 2);
    expect(wrongContext).toMatchObject({ error: expect.any(String) });
    const v2 = (rewrapped as { ciphertext: string }).ciphertext;
    expect(ciphertextVersion(v2)).toBe(2);
    // Only the data key was re-encrypted: nonce and AES ciphertext are the same bytes.
    expect(v2.split(':').slice(4)).toEqual(v1!.split(':').slice(4));
    expect(String((await kms.decryptBatch([{ ciphertext: v2, context }]))[0])).toBe(String(share('p1')));

    expect(await kms.setMinDecryptionVersion(2)).toEqual({ latestVersion: 2, minDecryptionVersion: 2, minEncryptionVersion: 0 });
    const [old] = await kms.decryptEach([{ ciphertext: v1!, context }]);
    expect(old).toMatchObject({ error: expect.stringContaining('below min_decryption_version 2') });
    expect(isBelowMinDecryptionVersion((old as { error: string }).error)).toBe(true);
    const [rewrapOld] = await kms.rewrapEach([{ ciphertext: v1!, context }], 2);
    expect(isBelowMinDecryptionVersion((rewrapOld as { error: string }).error)).toBe(true);
    // Lowering it again enables version 1 (DisableKey is reversible).
    expect((await kms.setMinDecryptionVersion(1)).minDecryptionVersion).toBe(1);
    expect(await kms.decryptEach([{ ciphertext: v1!, context }])).toEqual([{ plaintext: share('p1') }]);
  });

  /**
   * A KMS that accepts the connection and never answers (the campaign's black-hole cut): the
   * workers' own client (no client passed in) gives up after AWS_KMS_TIMEOUT_MS with a retryable
   * error. It used to only log a warning and wait on, holding the step for its two-minute
   * start-to-close timeout.
   */
  it('a KMS that never answers fails the call with KmsUnavailableError after the configured timeout, instead of holding the step', async () => {
    const url = new URL(inject('kmsEndpoint'));
    const proxy = new TcpFaultProxy({ host: url.hostname, port: Number(url.port) }, await freePort());
    await proxy.start();
    try {
      const { keyAlias, kms: direct } = await freshKey();
      const item = { plaintext: share('p1'), context: transitContext('u1', 'p1') };
      const [ciphertext] = await direct.encryptBatch([item]);
      await proxy.setMode('blackhole');
      const kms = new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint: `http://127.0.0.1:${proxy.port}`, keyAlias, timeoutMs: 300, credentials: LOCAL_KMS_CREDENTIALS });
      await expect(kms.encryptBatch([item])).rejects.toBeInstanceOf(KmsUnavailableError);
      await expect(kms.decryptEach([{ ciphertext: ciphertext!, context: item.context }])).rejects.toBeInstanceOf(KmsUnavailableError);
    } finally {
      await proxy.stop();
    }
  }, 30_000);

  it('classifies failures: KMS unreachable is retryable, an unknown alias is a ConfigError at start, refused credentials are a permission error', async () => {
    const url = new URL(inject('kmsEndpoint'));
    const proxy = new TcpFaultProxy({ host: url.hostname, port: Number(url.port) }, await freePort());
    await proxy.start();
    try {
      const { kms } = await freshKey({ endpoint: `http://127.0.0.1:${proxy.port}` });
      await proxy.setMode('refuse');
      await expect(kms.encryptBatch([{ plaintext: share('p1'), context: transitContext('u1', 'p1') }])).rejects.toBeInstanceOf(KmsUnavailableError);
      const warnings: string[] = [];
      await kms.checkKeyAtStart((message) => warnings.push(message));
      expect(warnings.join()).toContain('backups will wait for KMS');
    } finally {
      await proxy.stop();
    }
    const missing = new AwsKmsEnvelope({ region: LOCAL_KMS_REGION, endpoint: inject('kmsEndpoint'), keyAlias: 'alias/no-such-key', timeoutMs: 2_000 }, undefined, localKmsClient(inject('kmsEndpoint')));
    await expect(missing.checkKeyAtStart(() => undefined)).rejects.toBeInstanceOf(ConfigError);
    await expect(missing.encryptBatch([{ plaintext: share('p1'), context: transitContext('u1', 'p1') }])).rejects.toBeInstanceOf(KmsRequestError);
    // A disabled (not below-minimum) key: local-kms answers AccessDenied, which is the caller's refusal.
    const { classifyKmsError } = await import('../../adapters/kms/aws-kms-envelope');
    expect(classifyKmsError(Object.assign(new Error('no'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }), 'Decrypt')).toBeInstanceOf(KmsPermissionError);
    expect(classifyKmsError(Object.assign(new Error('slow'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }), 'Decrypt')).toBeInstanceOf(KmsUnavailableError);
  });
});
