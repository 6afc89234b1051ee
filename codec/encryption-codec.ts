import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCODING = 'binary/encrypted';
const METADATA_ENCODING_KEY = 'encoding';
const METADATA_KEY_ID_KEY = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Payload-codec keys by id; `activeKeyId` encrypts, every key decrypts (so keys can rotate). */
export interface CodecKeyRing {
  activeKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

export class CodecKeyError extends Error {
  override readonly name = 'CodecKeyError';
}

/**
 * AES-256-GCM payload codec: every payload the client and worker send to Temporal (workflow input,
 * activity results carrying shares, query results) is stored encrypted in history. The key id
 * travels in the payload metadata so older payloads stay readable after a key rotation.
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly ring: CodecKeyRing) {
    for (const [id, key] of ring.keys) {
      if (key.length !== 32) throw new CodecKeyError(`payload codec key ${id} must be 32 bytes, got ${key.length}`);
    }
    if (!ring.keys.has(ring.activeKeyId)) {
      throw new CodecKeyError(`the active payload codec key id ${ring.activeKeyId} is not in the key ring`);
    }
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.ring.keys.get(this.ring.activeKeyId)!;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const body = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCODING),
          [METADATA_KEY_ID_KEY]: Buffer.from(this.ring.activeKeyId),
        },
        data: body,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || Buffer.from(encoding).toString() !== ENCODING) return payload;
      const keyIdBytes = payload.metadata?.[METADATA_KEY_ID_KEY];
      const keyId = keyIdBytes ? Buffer.from(keyIdBytes).toString() : '';
      const key = this.ring.keys.get(keyId);
      if (!key) throw new CodecKeyError(`no payload codec key with id "${keyId}" to decrypt a payload; add it to the key ring`);
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new CodecKeyError('an encrypted payload is too short to be valid');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}
