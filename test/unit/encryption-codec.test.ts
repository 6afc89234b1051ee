import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { CodecKeyError, EncryptionCodec } from '../../codec/encryption-codec';
import { isUnencryptedPayload } from '../../domain/unencrypted-payload';

const key = (id: string) => [id, randomBytes(32)] as const;

describe('EncryptionCodec', () => {
  const k1 = key('k1');
  const k2 = key('k2');

  it('round-trips payloads and hides their content', async () => {
    const codec = new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) });
    const payload = defaultPayloadConverter.toPayload({ share: 'c2VjcmV0LXNoYXJl' });
    const [encoded] = await codec.encode([payload]);
    expect(Buffer.from(encoded!.data!).toString('latin1')).not.toContain('c2VjcmV0LXNoYXJl');
    expect(Buffer.from(encoded!.metadata!['encryption-key-id']!).toString()).toBe('k1');
    const [decoded] = await codec.decode([encoded!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual({ share: 'c2VjcmV0LXNoYXJl' });
  });

  it('after a rotation, old payloads still decode and new ones use the new key', async () => {
    const before = new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) });
    const after = new EncryptionCodec({ activeKeyId: 'k2', keys: new Map([k1, k2]) });
    const [old] = await before.encode([defaultPayloadConverter.toPayload('old')]);
    const [fresh] = await after.encode([defaultPayloadConverter.toPayload('new')]);
    expect(Buffer.from(fresh!.metadata!['encryption-key-id']!).toString()).toBe('k2');
    const decoded = await after.decode([old!, fresh!]);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual(['old', 'new']);
  });

  it('names the missing key id, and rejects tampered payloads', async () => {
    const codec = new EncryptionCodec({ activeKeyId: 'k2', keys: new Map([k2]) });
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload('x')]);
    const other = new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) });
    await expect(other.decode([encoded!])).rejects.toThrow(/no payload codec key with id "k2"/);
    // Flip bits (XOR) so the byte always changes; writing a fixed value left it unchanged 1 time in 256.
    const data = Buffer.from(encoded!.data!);
    data[20] = data[20]! ^ 0xff;
    const tampered = { ...encoded!, data };
    await expect(codec.decode([tampered])).rejects.toThrow();
  });

  it('on a worker, a payload labelled encrypted that does not decrypt becomes the refusal marker, never an error', async () => {
    const worker = new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) }, { requireEncrypted: true });
    const [ours] = await new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) }).encode([defaultPayloadConverter.toPayload('ok')]);
    const [unknownKey] = await new EncryptionCodec({ activeKeyId: 'k2', keys: new Map([k2]) }).encode([defaultPayloadConverter.toPayload('x')]);
    const labelled = (data: Buffer, keyId = 'k1') => ({
      metadata: { encoding: Buffer.from('binary/encrypted'), 'encryption-key-id': Buffer.from(keyId) },
      data,
    });
    const garbage = [unknownKey!, labelled(randomBytes(64)), labelled(Buffer.alloc(0)), labelled(randomBytes(64), '')];
    const decoded = await worker.decode([ours!, ...garbage]);
    expect(defaultPayloadConverter.fromPayload(decoded[0]!)).toBe('ok');
    for (const payload of decoded.slice(1)) expect(isUnencryptedPayload(defaultPayloadConverter.fromPayload(payload))).toBe(true);
  });

  it('passes through payloads it did not encode', async () => {
    const codec = new EncryptionCodec({ activeKeyId: 'k1', keys: new Map([k1]) });
    const plain = defaultPayloadConverter.toPayload('plain');
    expect(await codec.decode([plain])).toEqual([plain]);
  });

  it('refuses keys of the wrong size and an active id outside the ring', () => {
    expect(() => new EncryptionCodec({ activeKeyId: 'k', keys: new Map([['k', randomBytes(16)]]) })).toThrow(CodecKeyError);
    expect(() => new EncryptionCodec({ activeKeyId: 'zz', keys: new Map([k1]) })).toThrow(/not in the key ring/);
  });
});
