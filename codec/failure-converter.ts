import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Failure messages and stack traces go into history encoded (then encrypted by the payload codec)
 * instead of in clear text. Loaded by path: the worker bundles it into the workflow sandbox.
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
