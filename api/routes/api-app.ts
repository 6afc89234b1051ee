import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

/** The API's Fastify instance (its logger is the process's pino logger), as the route files register on it. */
export type ApiApp = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger>;
