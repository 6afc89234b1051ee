import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { BackupClient } from '../client/backup-client';
import type { BatchClient } from '../client/batch-client';
import type { DrillClient } from '../client/drill-client';
import type { KeysClient } from '../client/keys-client';
import type { RecoveryClient } from '../client/recovery-client';
import { ClientError, clientErrorView } from '../client/client-error';
import { TransitOperatorSigner, type OperatorSigner } from '../client/operator-signer';
import type { OperatorSignatures } from '../adapters/vault/operator-signatures';
import type { ApiToken } from './config';
import { matchesAnySecret } from '../config/secret-check';
import { registerBackupRoutes, registerRecoveryRoutes } from './routes/backups';
import { registerBatchRoutes } from './routes/batches';
import { registerCoverageRoute, type CoverageBackend } from './routes/coverage';
import { registerDrillAndRotationRoutes } from './routes/fleet-runs';

export interface ApiServerOptions {
  backups: BackupClient;
  recoveries: RecoveryClient;
  batches: BatchClient;
  drills: DrillClient;
  keys: KeysClient;
  /** Bearer tokens accepted (several during a rotation); a named one (`{name, token}`) is that operator's identity. */
  tokens: readonly (string | ApiToken)[];
  /**
   * Signs the operator acts of named tokens (recovery start, approve, reject, retry, abandon) with the
   * API's own Transit key; absent, those acts are refused (403). The workers verify the signature.
   */
  operatorSigning?: { signatures: OperatorSignatures; keyName: string };
  bodyLimitBytes: number;
  logger: Logger;
  /**
   * `GET /v1/coverage`, when the process has the backend's configuration (Portal, credentials, the
   * store: client/cli-coverage.ts coverageBackend); absent, the route answers 501.
   */
  coverage?: CoverageBackend;
}

/** The document's version: bump it when a route or shape changes. */
export const API_VERSION = '1.3.0';

/**
 * The HTTP API for backends not written in TypeScript: the same operations as BackupClient,
 * RecoveryClient and BatchClient, behind bearer tokens, with validated requests and an OpenAPI
 * document at `/openapi.json`. It holds the payload codec key (it is a client), never a sealing key.
 */
export async function createApiServer(options: ApiServerOptions) {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes,
    // Unknown fields are refused (400), not silently dropped: a typo must not start a batch with defaults.
    ajv: { customOptions: { removeAdditional: false } },
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'MPC wallet backup orchestrator', version: API_VERSION, description: 'Start and steer backups, recoveries and batch re-backups.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  const tokens = options.tokens.map((entry) => (typeof entry === 'string' ? { token: entry } : entry));
  app.decorateRequest('operator', undefined);
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config && (request.routeOptions.config as { public?: boolean }).public) return;
    const header = request.headers.authorization;
    const presented = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const matched = matchingToken(presented, tokens);
    if (!matched) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: 'Unauthorized', message: 'a valid bearer token is required (Authorization: Bearer <API token>)' });
    }
    // The token's name (never the token) is who the request acts as.
    if (matched.name !== undefined) (request as { operator?: string }).operator = matched.name;
  });

  app.setErrorHandler((error: FastifyError, request, reply) => sendError(error, request, reply));
  // Routes whose body is optional (retry, recovery start) take a request without one as `{}`.
  app.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && (request.body === undefined || request.body === null)) request.body = {};
  });

  app.get('/health', { config: { public: true }, schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  const signerFor = apiSigner(options.operatorSigning);
  registerBackupRoutes(app, options.backups, signerFor);
  registerRecoveryRoutes(app, options.recoveries, signerFor);
  registerBatchRoutes(app, options.batches, signerFor);
  registerCoverageRoute(app, options.coverage);
  registerDrillAndRotationRoutes(app, options.drills, options.keys);
  return app;
}

/** The token presented, compared in constant time with every configured one. */
function matchingToken(presented: string | undefined, tokens: readonly ApiToken[]): ApiToken | undefined {
  let found: ApiToken | undefined;
  for (const entry of tokens) if (matchesAnySecret(presented, [entry.token])) found ??= entry;
  return found;
}

/** The signer of one named token's acts, or the typed refusal of an unnamed token or an API without a signing key. */
function apiSigner(signing: ApiServerOptions['operatorSigning']): (operator: string | undefined) => OperatorSigner {
  return (operator) => {
    if (operator === undefined) throw new OperatorActForbiddenError('operator acts need a named API token (API_TOKENS=name:token): the name is the identity the workers verify');
    if (!signing) throw new OperatorActForbiddenError('this API cannot sign operator acts: set VAULT_ADDR and its Vault credentials (allowed to sign with API_SIGNING_KEY only)');
    return new TransitOperatorSigner(operator, 'api', signing.keyName, signing.signatures);
  };
}

/** Client errors (client/client-error.ts) answer with their own status; anything else is a 500 without internals. */
function sendError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return reply.code(400).send({ error: 'InvalidRequest', message: validationMessage(fastifyError) });
  if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return reply.code(fastifyError.statusCode).send({ error: fastifyError.code ?? 'BadRequest', message: fastifyError.message });
  }
  const view = clientErrorView(error);
  if (view) return reply.code(view.httpStatus).send({ error: view.code, message: view.message });
  request.log.error({ err: { name: error.name, message: error.message } }, 'request failed');
  return reply.code(500).send({ error: 'InternalError', message: 'the request failed; see the API server log' });
}

type ValidationProblem = NonNullable<FastifyError['validation']>[number];

/**
 * A schema refusal that names each field and what is wrong with it (`body.concurency: unknown field`),
 * every problem at once, rather than ajv's first message with no field (`body must NOT have
 * additional properties`).
 */
function validationMessage(error: FastifyError): string {
  const where = error.validationContext ?? 'request';
  const described = (problem: ValidationProblem) => {
    const path = `${where}${problem.instancePath.replace(/\//g, '.')}`;
    const params = problem.params as { additionalProperty?: string; missingProperty?: string; allowedValues?: unknown[] };
    if (problem.keyword === 'additionalProperties') return `${path}.${params.additionalProperty}: unknown field (remove it, or check its spelling)`;
    if (problem.keyword === 'required') return `${path}.${params.missingProperty}: is required`;
    if (problem.keyword === 'enum') return `${path}: ${problem.message} (${(params.allowedValues ?? []).join(', ')})`;
    return `${path}: ${problem.message}`;
  };
  return error.validation!.map(described).join('; ');
}

/** A request for an operator act that this token or this API cannot sign. */
export class OperatorActForbiddenError extends ClientError {
  readonly kind = 'forbidden' as const;
}
