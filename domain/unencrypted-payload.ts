/**
 * What a worker's payload codec hands the workflow instead of a payload that was not encrypted with
 * the codec (a start or signal from the Web UI or a plain Temporal client), or that is labelled
 * encrypted but does not decrypt with the workers' keys. The workflow then
 * refuses it: a start fails at once (freeing the workflow id), an update is rejected, a signal is
 * ignored. Throwing in the codec instead would fail the workflow task on every replay and wedge the
 * run for good.
 */
export const UNENCRYPTED_PAYLOAD_MARKER = '__mpcBackupUnencryptedPayload';

export function isUnencryptedPayload(value: unknown): boolean {
  return typeof value === 'object' && value !== null && UNENCRYPTED_PAYLOAD_MARKER in value;
}

export const UNENCRYPTED_PAYLOAD_MESSAGE =
  'refused: this input was not encrypted with the payload codec, or does not decrypt with the workers\' PAYLOAD_CODEC_KEYS. Start and steer backups with the project client or CLI ' +
  '(they hold PAYLOAD_CODEC_KEYS), or through the codec server, not with a plain Temporal client';
