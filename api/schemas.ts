/**
 * JSON Schemas of the HTTP API's requests and answers: fastify validates requests with them and
 * @fastify/swagger builds the OpenAPI document from them (one description of each shape).
 */
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_RULE } from '../domain/idempotency-key';

export const USER_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$';

export const userIdParams = {
  type: 'object',
  required: ['userId'],
  properties: { userId: { type: 'string', pattern: USER_ID_PATTERN, description: "the company's user id" } },
} as const;

export const batchIdParams = {
  type: 'object',
  required: ['batchId'],
  properties: { batchId: { type: 'string', minLength: 1, maxLength: 200 } },
} as const;

export const waitQuery = {
  type: 'object',
  properties: { waitSeconds: { type: 'integer', minimum: 0, maximum: 60, default: 20, description: 'how long to wait for the run to end' } },
  additionalProperties: false,
} as const;

export const retryBody = {
  type: 'object',
  properties: { requestedBy: { type: 'string', minLength: 1, maxLength: 200 } },
  additionalProperties: false,
} as const;

export const abandonBody = {
  type: 'object',
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 }, requestedBy: { type: 'string', minLength: 1, maxLength: 200 } },
  additionalProperties: false,
} as const;

export const rejectBody = {
  type: 'object',
  required: ['reason'],
  additionalProperties: false,
  properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } },
} as const;

export const recoveryStartBody = {
  type: 'object',
  properties: { freshBackup: { type: 'boolean', default: true, description: 'start a fresh backup of the recovered wallet at the end' } },
  additionalProperties: false,
} as const;

export const batchStartBody = {
  type: 'object',
  required: ['source'],
  properties: {
    source: {
      oneOf: [
        {
          type: 'object',
          required: ['kind', 'userIds'],
          properties: { kind: { const: 'list' }, userIds: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: USER_ID_PATTERN } } },
          additionalProperties: false,
        },
        {
          type: 'object',
          required: ['kind', 'url'],
          properties: { kind: { const: 'http' }, url: { type: 'string', format: 'uri' } },
          additionalProperties: false,
        },
      ],
    },
    batchId: { type: 'string', minLength: 1, maxLength: 200 },
    concurrency: { type: 'integer', minimum: 1, maximum: 1000 },
    backupsPerMinute: { type: 'number', minimum: 0.01 },
    skipIfBackedUpSince: { type: 'string', format: 'date-time' },
  },
  additionalProperties: false,
} as const;

/** Documented here; checked by the client library (InvalidIdempotencyKeyError, a 400 that names the rule). */
export const idempotencyKeyHeaders = {
  type: 'object',
  properties: {
    [IDEMPOTENCY_KEY_HEADER.toLowerCase()]: {
      type: 'string',
      description: `names this request: the same key again within 24 h returns the run it started (idempotentReplay: true) instead of a new backup; ${IDEMPOTENCY_KEY_RULE}`,
    },
  },
} as const;

export const errorAnswer = {
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' } },
} as const;

export const startedAnswer = {
  type: 'object',
  required: ['userId', 'workflowId', 'runId', 'alreadyRunning'],
  properties: {
    userId: { type: 'string' },
    workflowId: { type: 'string' },
    runId: { type: 'string' },
    alreadyRunning: { type: 'boolean' },
    idempotentReplay: { type: 'boolean', description: 'the run an earlier request with the same Idempotency-Key started (backups only)' },
  },
} as const;

/** Status views and results carry nested, versioned shapes: documented as objects, passed through as they are. */
export const openObject = { type: 'object', additionalProperties: true } as const;

/** A route's answers: `ok` under its success code, and the error shape under every status a client error can take. */
export const responses = (ok: object, okCode = 200) => ({ [okCode]: ok, 400: errorAnswer, 401: errorAnswer, 404: errorAnswer, 409: errorAnswer });

/** `?status=&limit=` of the list routes (client/run-list.ts checks the status against the kind of run). */
export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', pattern: '^[A-Za-z_]{1,32}$' },
    limit: { type: 'integer', minimum: 1, maximum: 1_000, default: 20 },
  },
} as const;

export const listAnswer = { type: 'array', items: { type: 'object', additionalProperties: true } } as const;
