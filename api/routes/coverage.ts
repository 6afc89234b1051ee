import { PassThrough } from 'node:stream';
import type { ApiApp } from './api-app';
import { COVERAGE_CSV_HEADER, coverageCsvLine, type CoverageOptions, type CoverageRow, type CoverageSummary } from '../../client/coverage';

/**
 * `GET /v1/coverage`: every user of a list or the backend's paged source, streamed as JSON Lines or
 * CSV as rows are made. Without the backend's configuration the route answers 501.
 */
export interface CoverageBackend {
  run(users: AsyncIterable<string[]>, options: CoverageOptions, emit: (row: CoverageRow) => Promise<void>): Promise<CoverageSummary>;
  /** The backend's paged user list, as `backup coverage --source-url` reads it. */
  pages(url: string, pageSize: number): AsyncIterable<string[]>;
}

export function registerCoverageRoute(app: ApiApp, coverage: CoverageBackend | undefined): void {
  app.get<{ Querystring: { users?: string; sourceUrl?: string; pageSize: number; format: 'json' | 'csv'; maxAgeDays: number; usersPerMinute: number } }>('/v1/coverage', {
    schema: {
      summary: 'Coverage of every user of a list or the backend’s paged source: the newest completed backup, each store’s copy, and who has none, a stale one, a parked run, a drill failure or a copy missing (JSON Lines or CSV, streamed)',
      tags: ['coverage'],
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          users: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}(,[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}){0,999}$' },
          sourceUrl: { type: 'string', pattern: '^https?://\\S+$', maxLength: 2048 },
          pageSize: { type: 'integer', minimum: 1, maximum: 10_000, default: 500 },
          format: { type: 'string', enum: ['json', 'csv'], default: 'json' },
          maxAgeDays: { type: 'number', minimum: 0.001, maximum: 36_500, default: 30 },
          usersPerMinute: { type: 'integer', minimum: 1, maximum: 60_000, default: 600 },
        },
      },
    },
  }, async (request, reply) => {
      if (!coverage) return reply.code(501).send({ error: 'CoverageNotConfigured', message: 'this API process has no backend configuration (PORTAL_*, CREDENTIALS_URL, CIPHERTEXT_STORE): run `backup coverage` instead' });
    const { users, sourceUrl, pageSize, format, maxAgeDays, usersPerMinute } = request.query;
    if ((users === undefined) === (sourceUrl === undefined)) return reply.code(400).send({ error: 'BadRequest', message: 'give exactly one of users and sourceUrl' });
    let pages: AsyncIterable<string[]>;
    try {
      pages = users !== undefined ? (async function* () { yield users.split(','); })() : coverage.pages(sourceUrl!, pageSize);
    } catch (error) {
      return reply.code(400).send({ error: 'BadRequest', message: error instanceof Error ? error.message : String(error) });
    }
    const body = new PassThrough();
    const write = (line: string) => new Promise<void>((resolve) => (body.write(`${line}\n`) ? resolve() : body.once('drain', resolve)));
    // Streamed: rows go out as they are made; the summary (JSON) or nothing more (CSV) closes it.
    void (async () => {
      if (format === 'csv') await write(COVERAGE_CSV_HEADER);
      const summary = await coverage.run(pages, { maxAgeMs: maxAgeDays * 86_400_000, usersPerMinute }, (row) => write(format === 'csv' ? coverageCsvLine(row) : JSON.stringify(row)));
      if (format === 'json') await write(JSON.stringify({ summary }));
      body.end();
    })().catch((error: unknown) => {
      request.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'coverage report failed');
      body.end(format === 'json' ? `${JSON.stringify({ error: 'CoverageFailed', message: error instanceof Error ? error.message : String(error) })}\n` : '');
    });
    return reply.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson').send(body);
  });
}
