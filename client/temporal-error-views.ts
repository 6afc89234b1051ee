import { isGrpcServiceError } from '@temporalio/client';

/** The client-error kinds (client-error.ts) a Temporal answer maps to; named here so this file need not import that one. */
type TemporalAnswerKind = 'invalid' | 'notFound' | 'refused' | 'unavailable';

/**
 * Temporal's own answers, said in the service's words: what happened to the run the caller named,
 * and what to do, with Temporal's message kept after it (an operator may search for it). No raw
 * Temporal message reaches a user without such a sentence. Undefined: not a Temporal answer.
 */
export function temporalErrorView(error: Error): { kind: TemporalAnswerKind; message: string; code?: string } | undefined {
  const raw = `(Temporal: "${error.message}")`;
  if (error.name === 'WorkflowNotFoundError') {
    if (/already completed/i.test(error.message)) {
      return { kind: 'refused', message: `that run has already ended, so it takes no more actions (pause, resume, cancel, retry, …); its status or report says how it ended ${raw}` };
    }
    const id = /for ID: (\S+)/.exec(error.message)?.[1];
    return { kind: 'notFound', message: `${id ? `no run ${id}` : 'no such run'}: it was never started in this namespace, or retention has deleted it; check the id (the list commands show every run) ${raw}` };
  }
  if (error.name === 'NamespaceNotFoundError') {
    return { kind: 'invalid', message: `the Temporal namespace does not exist on this server: check TEMPORAL_NAMESPACE (or your profile's namespace), or create it (temporal operator namespace create) ${raw}` };
  }
  if (/Failed to connect before the deadline/i.test(error.message)) {
    return { kind: 'unavailable', code: 'TemporalUnreachableError', message: `cannot reach Temporal: is it running, and do TEMPORAL_ADDRESS and the TLS settings point at its frontend? ${raw}` };
  }
  return isGrpcServiceError(error) ? grpcErrorView(error.code, raw) : undefined;
}

/** The gRPC status codes a caller can act on (grpc/status.proto; @grpc/grpc-js is not a direct dependency). */
const GrpcStatus = { DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** A Temporal call answered with a gRPC status; only the statuses a caller can act on get a view. */
function grpcErrorView(code: number | undefined, raw: string): { kind: TemporalAnswerKind; message: string } | undefined {
  switch (code) {
    case GrpcStatus.UNAVAILABLE:
      return { kind: 'unavailable', message: `Temporal is unavailable now (restarting, or unreachable): try again shortly ${raw}` };
    case GrpcStatus.DEADLINE_EXCEEDED:
      return { kind: 'unavailable', message: `Temporal did not answer in time (overloaded, or the network is slow): try again ${raw}` };
    case GrpcStatus.PERMISSION_DENIED:
    case GrpcStatus.UNAUTHENTICATED:
      return { kind: 'invalid', message: `Temporal refused this client's credentials for the namespace: check TEMPORAL_API_KEY or the mTLS certificate, and the namespace's permissions ${raw}` };
    default:
      return undefined;
  }
}
