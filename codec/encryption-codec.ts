import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { aesGcmOpen, aesGcmSeal } from './aes-gcm';
import { checkKeyRing, KeyRingError, type KeyRing } from './key-ring';
import { defaultPayloadConverter } from '@temporalio/common';
import { UNENCRYPTED_PAYLOAD_MARKER } from '../domain/unencrypted-payload';

const UNENCRYPTED_MARKER_PAYLOAD = defaultPayloadConverter.toPayload({ [UNENCRYPTED_PAYLOAD_MARKER]: true });

export const ENCODING = 'binary/encrypted';
const METADATA_ENCODING_KEY = 'encoding';
const METADATA_KEY_ID_KEY = 'encryption-key-id';

/** Payload-codec keys by id; `activeKeyId` encrypts, every key decrypts (so keys can rotate). */
export type CodecKeyRing = KeyRing;

export class CodecKeyError extends KeyRingError {
  override readonly name = 'CodecKeyError';
}

export interface EncryptionCodecOptions {
  /**
   * Refuse payloads that are not encrypted (the worker sets this): one from someone without the
   * codec key (the Web UI, `temporal workflow start`), or one labelled encrypted that does not
   * decrypt (unknown key id, altered or random data), decodes to a marker value that the workflows
   * refuse (see domain/unencrypted-payload.ts), never to the input it claims to be, and never throws.
   */
  requireEncrypted?: boolean;
}

/**
 * AES-256-GCM payload codec: every payload the client and worker send to Temporal (workflow input,
 * activity results, query results, encoded failure messages) is stored encrypted in history. The
 * key id travels in the payload metadata so older payloads stay readable after a key rotation.
 * Clients, the CLI and the codec server hold this key, so it is not the protection of backup
 * shares: those are sealed with the workers' own key before they reach a payload (ShareSealer).
 */
export class EncryptionCodec implements PayloadCodec {
  constructor(
    private readonly ring: CodecKeyRing,
    private readonly options: EncryptionCodecOptions = {},
  ) {
    try {
      checkKeyRing(ring, 'payload codec');
    } catch (error) {
      throw new CodecKeyError((error as Error).message);
    }
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.ring.keys.get(this.ring.activeKeyId)!;
    return payloads.map((payload) => ({
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(ENCODING),
        [METADATA_KEY_ID_KEY]: Buffer.from(this.ring.activeKeyId),
      },
      data: aesGcmSeal(key, temporal.api.common.v1.Payload.encode(payload).finish()),
    }));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || Buffer.from(encoding).toString() !== ENCODING) {
        return this.options.requireEncrypted ? UNENCRYPTED_MARKER_PAYLOAD : payload;
      }
      try {
        return this.open(payload);
      } catch (error) {
        // A worker never throws here: a payload that fails every workflow task would wedge the run
        // for good (a start, signal or update from anyone who can label a payload "encrypted").
        if (this.options.requireEncrypted) return UNENCRYPTED_MARKER_PAYLOAD;
        throw error;
      }
    });
  }

  /** Decrypts one payload labelled encrypted; throws CodecKeyError when it cannot. */
  private open(payload: Payload): Payload {
    const keyIdBytes = payload.metadata?.[METADATA_KEY_ID_KEY];
    const keyId = keyIdBytes ? Buffer.from(keyIdBytes).toString() : '';
    const key = this.ring.keys.get(keyId);
    if (!key) throw new CodecKeyError(`no payload codec key with id "${keyId}" to decrypt a payload; add it to the key ring`);
    let plain: Buffer;
    try {
      plain = aesGcmOpen(key, Buffer.from(payload.data ?? new Uint8Array()));
    } catch (error) {
      throw new CodecKeyError(`an encrypted payload could not be decrypted with key "${keyId}": ${(error as Error).message}`);
    }
    try {
      return temporal.api.common.v1.Payload.decode(plain);
    } catch {
      throw new CodecKeyError(`an encrypted payload decrypted with key "${keyId}" does not hold a payload`);
    }
  }
}
