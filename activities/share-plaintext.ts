import { createHash } from 'node:crypto';

/** The exact bytes encrypted per curve: Portal's `{id, share}` object, so recovery can rebuild it. */
export function sharePlaintext(share: { id: string; share: string }): Buffer {
  return Buffer.from(JSON.stringify({ id: share.id, share: share.share }), 'utf8');
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
