import { isGrpcServiceError, ServiceError } from '@temporalio/client';
import { TemporalUnavailableError } from '../../domain/errors';

/** gRPC status codes that say "not now" rather than "never": the call is worth another attempt. */
const TRANSIENT_CODES: ReadonlyMap<number, string> = new Map([
  [1, 'CANCELLED'],
  [2, 'UNKNOWN'],
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [10, 'ABORTED'],
  [13, 'INTERNAL'],
  [14, 'UNAVAILABLE'],
]);

/**
 * Turns a Temporal service failure seen inside an activity (a visibility list, a describe, a query)
 * into TemporalUnavailableError, which is retried; anything else is returned unchanged. Without
 * this, a restart of the Temporal server would surface as an unclassified (non-retried) error.
 */
export function classifyTemporalError(error: unknown, operation: string): unknown {
  const grpc = isGrpcServiceError(error) ? error : error instanceof ServiceError && isGrpcServiceError(error.cause) ? error.cause : undefined;
  if (grpc && TRANSIENT_CODES.has(grpc.code)) {
    return new TemporalUnavailableError(`${operation}: the Temporal service is unavailable (gRPC ${TRANSIENT_CODES.get(grpc.code)}); will retry`);
  }
  if (!grpc && error instanceof ServiceError) {
    return new TemporalUnavailableError(`${operation}: the Temporal service call failed (${error.message}); will retry`);
  }
  return error;
}

/** Runs a Temporal call, classifying its failure as above. */
export async function temporalCall<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw classifyTemporalError(error, operation);
  }
}
