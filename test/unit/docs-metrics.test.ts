import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COVERAGE_METRICS, WEBHOOK_METRICS, WORKER_METRICS, WORKFLOW_METRICS, type MetricDefinition } from '../../metrics/definitions';

/**
 * docs/operations.md's metric table names, for each metric, the endpoint it is scraped from. The
 * definitions say where each is exported (metrics/definitions.ts): the worker's registry is the
 * service endpoint, the webhook's the webhook's, the workflows' metricMeter the Temporal runtime's.
 * A metric missing from the table, or under the wrong endpoint, fails here.
 */
const table = readFileSync(join(__dirname, '..', '..', 'docs', 'operations.md'), 'utf8')
  .split('\n')
  .filter((line) => line.startsWith('| `mpc_backup_'))
  .map((line) => {
    const [names = '', endpoint = ''] = line.split('|').slice(1, 3);
    return { names: [...names.matchAll(/`(mpc_backup_[a-z_]+)`/g)].map((m) => m[1]!), endpoints: endpoint.split(',').map((e) => e.trim()) };
  });

const endpointsOf = (name: string) => table.filter((row) => row.names.includes(name)).flatMap((row) => row.endpoints);
const names = (group: Record<string, MetricDefinition>) => Object.values(group).map((metric) => metric.name);

describe('the metrics table in docs/operations.md', () => {
  it.each([
    ['runtime', names(WORKFLOW_METRICS)],
    ['webhook', names(WEBHOOK_METRICS)],
    ['textfile', names(COVERAGE_METRICS)],
  ] as const)('lists every %s metric under that endpoint', (endpoint, metrics) => {
    for (const name of metrics) expect(endpointsOf(name), name).toEqual([endpoint]);
  });

  it('lists every worker metric under the service endpoint, and the Vault call families under the webhook too (it makes Transit calls)', () => {
    const alsoWebhook = new Set([WORKER_METRICS.vaultRequests.name, WORKER_METRICS.vaultRequestDuration.name]);
    for (const name of names(WORKER_METRICS)) {
      expect(endpointsOf(name), name).toEqual(alsoWebhook.has(name) ? ['service', 'webhook'] : ['service']);
    }
  });

  it('names no metric that is not defined', () => {
    const defined = new Set([WORKFLOW_METRICS, WEBHOOK_METRICS, COVERAGE_METRICS, WORKER_METRICS].flatMap(names));
    expect(table.flatMap((row) => row.names).filter((name) => !defined.has(name))).toEqual([]);
  });
});
