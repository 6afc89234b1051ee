import { join } from 'node:path';
import type { DataConverter } from '@temporalio/common';
import { EncryptionCodec } from './encryption-codec';
import type { KeyRing } from './key-ring';

/** The module with the `failureConverter` export, for Worker options and bundleWorkflowCode. */
export const FAILURE_CONVERTER_PATH = join(__dirname, 'failure-converter.ts');

/**
 * The data converter of every process that talks to Temporal: payloads encrypted with the codec
 * key ring, failure messages encoded into payloads. Workers also refuse unencrypted payloads.
 */
export function backupDataConverter(codecKeys: KeyRing, options: { worker?: boolean } = {}): DataConverter {
  return {
    payloadCodecs: [new EncryptionCodec(codecKeys, { requireEncrypted: options.worker ?? false })],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
