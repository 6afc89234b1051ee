import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Context } from '@temporalio/activity';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { transitRoute } from '../../adapters/vault/vault-transit';
import { ConfigError } from '../../config/config-error';
import { activityMetricsInterceptor } from '../../metrics/activity-metrics-interceptor';
import {
  errorTypeLabel,
  statusClassOf,
  WEBHOOK_METRICS,
  WORKER_METRICS,
  WORKFLOW_METRICS,
  type MetricDefinition,
} from '../../metrics/definitions';
import { parseListenAddress } from '../../metrics/listen-address';
import { startMetricsServer } from '../../metrics/metrics-server';
import { createWebhookMetrics, createWorkerMetrics, httpFailureOf } from '../../metrics/service-metrics';
import { temporalRuntimeMetrics } from '../../metrics/temporal-runtime';
import { freePort } from '../../stack/free-port';
import { loadWebhookConfig } from '../../webhook/config';
import { createWebhookServer } from '../../webhook/webhook-server';
import { loadWorkerConfig } from '../../worker/config';
import { parsePrometheusText, sumOf } from '../support/prometheus-text';

const WORKER_ENV = {
  PAYLOAD_CODEC_KEYS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
  SHARE_SEALING_KEYS: `s1:${Buffer.alloc(32, 9).toString('base64')}`,
  VAULT_ADDR: 'http://127.0.0.1:8200',
  VAULT_TOKEN: 'dev-token',
  CREDENTIALS_URL: 'http://127.0.0.1:4100/backend/users/{userId}/credentials',
};
const WEBHOOK_ENV = {
  WEBHOOK_SECRETS: 'whsec-0123456789abcdef',
  DATABASE_URL: 'postgres://svc:pw@127.0.0.1:5432/mpc_backup',
  VAULT_ADDR: 'http://127.0.0.1:8200',
  VAULT_TOKEN: 'dev-token',
};

function problems(load: () => unknown): string[] {
  try {
    load();
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

const ALL_DEFINITIONS: MetricDefinition[] = [...Object.values(WORKER_METRICS), ...Object.values(WEBHOOK_METRICS), ...Object.values(WORKFLOW_METRICS)];

describe('metric definitions (metrics/definitions.ts)', () => {
  it('name every metric once, mpc_backup_…, counters …_total, histograms in seconds with buckets', () => {
    const names = ALL_DEFINITIONS.map((definition) => definition.name);
    expect(new Set(names).size).toBe(names.length);
    for (const definition of ALL_DEFINITIONS) {
      expect(definition.name).toMatch(/^mpc_backup_[a-z_]+$/);
      expect(definition.help.length, definition.name).toBeGreaterThan(20);
      if (definition.type === 'counter') expect(definition.name).toMatch(/_total$/);
      if (definition.type === 'histogram') {
        expect(definition.name).toMatch(/_seconds$/);
        expect([...definition.buckets!].sort((a, b) => a - b)).toEqual(definition.buckets);
      }
    }
  });

  it('have no label that could carry an id, a URL or a secret', () => {
    const labels = new Set(ALL_DEFINITIONS.flatMap((definition) => definition.labelNames));
    expect([...labels].sort()).toEqual(['activity', 'error_type', 'event', 'kind', 'outcome', 'retry', 'retryable', 'route', 'signing_key', 'status_class', 'step', 'task_queue', 'workflow_type']);
  });

  it('turn statuses into classes and keep anything but a type name out of error_type', () => {
    expect([200, 204, 301, 404, 429, 503].map((status) => statusClassOf(status))).toEqual(['2xx', '2xx', '3xx', '4xx', '4xx', '5xx']);
    expect(statusClassOf(undefined, 'timeout')).toBe('timeout');
    expect(statusClassOf(undefined)).toBe('network');
    expect(errorTypeLabel('PortalAuthError')).toBe('PortalAuthError');
    for (const bad of ['user-1', 'backup of user-1 failed', 'cmwvyzbqne2e2fc62d9f03040', '', undefined, 'A'.repeat(100)]) expect(errorTypeLabel(bad)).toBe('Other');
  });

  it('reads how a failed call ended from axios and node-vault errors alike', () => {
    expect(httpFailureOf({ response: { status: 429 } })).toEqual({ status: 429 });
    expect(httpFailureOf({ response: { statusCode: 503 } })).toEqual({ status: 503 });
    expect(httpFailureOf({ code: 'ECONNABORTED' })).toEqual({ failure: 'timeout' });
    expect(httpFailureOf({ code: 'ECONNREFUSED' })).toEqual({ failure: 'network' });
    expect(httpFailureOf(new Error('x'))).toEqual({ failure: 'network' });
  });

  it('template Vault paths: mount and key name are configuration, not labels', () => {
    expect(transitRoute('transit/encrypt/mpc-backup', 'transit', 'mpc-backup')).toBe('{mount}/encrypt/{key}');
    expect(transitRoute('secret/transit/keys/mpc-backup/rotate', 'secret/transit', 'mpc-backup')).toBe('{mount}/keys/{key}/rotate');
    expect(transitRoute('transit/keys/another', 'transit', 'mpc-backup')).toBe('{mount}/keys/{other}');
    expect(transitRoute('elsewhere/encrypt/mpc-backup', 'transit', 'mpc-backup')).toBe('{mount}/other');
  });

  it('give the Temporal runtime our buckets for the workflow histogram', () => {
    const config = temporalRuntimeMetrics('127.0.0.1:9464');
    expect(config).toMatchObject({ prometheus: { bindAddress: '127.0.0.1:9464' } });
    expect('prometheus' in config && config.prometheus.histogramBucketOverrides).toEqual({
      [WORKFLOW_METRICS.stepDuration.name]: [...WORKFLOW_METRICS.stepDuration.buckets!],
    });
  });
});

describe('metrics configuration', () => {
  it('is off unless set; takes ip:port (IPv4 or IPv6) for each endpoint', () => {
    expect(loadWorkerConfig(WORKER_ENV).metrics).toEqual({});
    const config = loadWorkerConfig({ ...WORKER_ENV, METRICS_ADDRESS: '0.0.0.0:9465', TEMPORAL_METRICS_ADDRESS: '[::1]:9464' });
    expect(config.metrics).toEqual({ address: { host: '0.0.0.0', port: 9465 }, temporalAddress: '[::1]:9464' });
    expect(loadWebhookConfig({ ...WEBHOOK_ENV, WEBHOOK_METRICS_ADDRESS: '127.0.0.1:9466' }).metricsAddress).toEqual({ host: '127.0.0.1', port: 9466 });
    expect(loadWebhookConfig(WEBHOOK_ENV).metricsAddress).toBeUndefined();
  });

  it.each(['localhost:9464', '9464', ':9464', '127.0.0.1:0', '127.0.0.1:70000', '300.1.1.1:9464', 'http://127.0.0.1:9464'])('refuses %s, naming the variable', (value) => {
    for (const name of ['METRICS_ADDRESS', 'TEMPORAL_METRICS_ADDRESS']) {
      const found = problems(() => loadWorkerConfig({ ...WORKER_ENV, [name]: value })).join('\n');
      expect(found).toContain(name);
      expect(found).toContain('ip:port');
    }
    expect(problems(() => loadWebhookConfig({ ...WEBHOOK_ENV, WEBHOOK_METRICS_ADDRESS: value })).join('\n')).toContain('WEBHOOK_METRICS_ADDRESS');
    expect(parseListenAddress(value)).toBeUndefined();
  });

  it('refuses one port for two listeners', () => {
    expect(problems(() => loadWorkerConfig({ ...WORKER_ENV, METRICS_ADDRESS: '127.0.0.1:9464', TEMPORAL_METRICS_ADDRESS: '0.0.0.0:9464' })).join('\n')).toContain(
      'different ports',
    );
    expect(problems(() => loadWebhookConfig({ ...WEBHOOK_ENV, WEBHOOK_PORT: '4300', WEBHOOK_METRICS_ADDRESS: '127.0.0.1:4300' })).join('\n')).toContain('WEBHOOK_PORT');
  });
});

describe('the worker registry', () => {
  it('counts calls by route and status class, 429s apart, and never throws', async () => {
    const metrics = createWorkerMetrics();
    metrics.portal.record({ route: 'POST /v1/backup', status: 429, seconds: 0.01 });
    metrics.portal.record({ route: 'POST /v1/backup', status: 200, seconds: 0.02 });
    metrics.portal.record({ route: 'POST /v1/backup', failure: 'timeout', seconds: 30 });
    metrics.credentials.record({ route: 'GET {CREDENTIALS_URL}', status: 404, seconds: 0.01 });
    metrics.activities.attempt('mpcBackup', 2);
    metrics.activities.failure('mpcBackup', 'failed for user-1: boom', true);
    metrics.drill.user('failed', 'CIPHERTEXT_INVALID');
    metrics.drill.user('failed', 'user-7');
    metrics.drill.user('passed', 'whatever');
    metrics.portal.record({ route: 'x', seconds: Number.NaN });
    const scraped = parsePrometheusText(await metrics.scrape());
    expect(sumOf(scraped, WORKER_METRICS.portalRequests.name, { route: 'POST /v1/backup', status_class: '4xx' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.portalRequests.name, { route: 'POST /v1/backup', status_class: 'timeout' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.portalRateLimited.name, { route: 'POST /v1/backup' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.credentialsRequests.name, { status_class: '4xx' })).toBe(1);
    expect(scraped.samples.find((sample) => sample.name === WORKER_METRICS.credentialsRequests.name)?.labels).toEqual({ status_class: '4xx' });
    expect(sumOf(scraped, WORKER_METRICS.activityAttempts.name, { activity: 'mpcBackup', retry: 'true' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.activityFailures.name, { error_type: 'Other', retryable: 'true' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.drillUsers.name, { outcome: 'failed', kind: 'CIPHERTEXT_INVALID' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.drillUsers.name, { outcome: 'failed', kind: 'Other' })).toBe(1);
    expect(sumOf(scraped, WORKER_METRICS.drillUsers.name, { outcome: 'passed', kind: 'none' })).toBe(1);
    expect(scraped.text).not.toContain('user-');
  });

  it('reads the parked count on scrape, caches it, and keeps the last value when the count fails', async () => {
    let calls = 0;
    const cachedMetrics = createWorkerMetrics();
    cachedMetrics.observeParkedBackups('mpc-backup', () => Promise.resolve({ backupWallet: (calls += 1) }));
    await cachedMetrics.scrape();
    await cachedMetrics.scrape();
    expect(calls).toBe(1);

    const metrics = createWorkerMetrics({ parkedCacheMs: 0 });
    let answer: () => Promise<Record<string, number>> = () => Promise.resolve({ backupWallet: 3, recoverWallet: 1 });
    metrics.observeParkedBackups('mpc-backup', () => answer());
    const first = parsePrometheusText(await metrics.scrape());
    expect(sumOf(first, WORKER_METRICS.parkedBackups.name, { task_queue: 'mpc-backup', workflow_type: 'backupWallet' })).toBe(3);
    expect(sumOf(first, WORKER_METRICS.parkedBackups.name, { task_queue: 'mpc-backup', workflow_type: 'recoverWallet' })).toBe(1);
    answer = () => Promise.reject(new Error('Temporal unavailable'));
    const failed = parsePrometheusText(await metrics.scrape());
    expect(sumOf(failed, WORKER_METRICS.parkedBackups.name, { task_queue: 'mpc-backup', workflow_type: 'backupWallet' })).toBe(3);
    expect(sumOf(failed, WORKER_METRICS.parkedBackupsQueryFailures.name)).toBe(1);
  });
});

describe('the activity interceptor', () => {
  const run = async (attempt: number, outcome: () => Promise<unknown>) => {
    const seen: string[] = [];
    const factory = activityMetricsInterceptor({
      attempt: (activity, n) => seen.push(`attempt ${activity} ${n}`),
      failure: (activity, type, retryable) => seen.push(`failure ${activity} ${type} ${retryable}`),
    });
    const { inbound } = factory({ info: { activityType: 'storeCiphertexts', attempt } } as unknown as Context);
    await inbound!.execute!({ args: [], headers: {} }, () => outcome()).catch(() => undefined);
    return seen;
  };

  it('counts attempts, and failures by ApplicationFailure type and retryability; a cancellation is no failure', async () => {
    expect(await run(1, () => Promise.resolve('ok'))).toEqual(['attempt storeCiphertexts 1']);
    expect(await run(3, () => Promise.reject(ApplicationFailure.create({ type: 'PortalAuthError', message: 'x', nonRetryable: true })))).toEqual([
      'attempt storeCiphertexts 3',
      'failure storeCiphertexts PortalAuthError false',
    ]);
    expect(await run(2, () => Promise.reject(ApplicationFailure.create({ type: 'PortalUnavailableError', message: 'x' })))).toContain(
      'failure storeCiphertexts PortalUnavailableError true',
    );
    expect(await run(1, () => Promise.reject(new CancelledFailure('cancelled')))).toEqual(['attempt storeCiphertexts 1']);
  });
});

describe('the webhook’s metrics (in process, stub storage and Vault)', () => {
  it('counts every delivery outcome, whichever hook answered, by route template', async () => {
    const metrics = createWebhookMetrics();
    const stored = new Map<string, string>();
    let vaultDown = false;
    const app = createWebhookServer({
      records: {
        async putOnce(row) {
          const key = `${row.clientId}/${row.pairId}`;
          const existing = stored.get(key);
          if (existing === undefined) stored.set(key, row.shareSha256);
          return existing === undefined ? 'inserted' : existing === row.shareSha256 ? 'unchanged' : 'conflict';
        },
        listByClient: () => Promise.resolve([]),
      },
      transit: {
        encryptBatch: (items) => (vaultDown ? Promise.reject(new Error('down')) : Promise.resolve(items.map(() => 'vault:v1:x'))),
        decryptBatch: () => Promise.resolve([]),
      },
      secrets: ['whsec-0123456789abcdef'],
      deadlineMs: 1_000,
      bodyLimitBytes: 2_048,
      logger: pino({ level: 'silent' }),
      metrics,
    });
    const post = async (body: unknown, secret = 'whsec-0123456789abcdef', url = '/backup') =>
      (await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', 'x-webhook-secret': secret }, payload: typeof body === 'string' ? body : JSON.stringify(body) })).statusCode;
    const delivery = (share: string) => ({ clientId: 'client-secret-id', share, backupSharePairId: 'pair-secret-id' });
    expect(await post(delivery('share-one'))).toBe(200);
    expect(await post(delivery('share-one'))).toBe(200);
    expect(await post(delivery('share-two'))).toBe(409);
    expect(await post(delivery('share-one'), 'whsec-wrong-0123456789')).toBe(401);
    expect(await post({ clientId: 'c' })).toBe(400);
    expect(await post({ ...delivery('x'), share: 'y'.repeat(4_000) })).toBe(413);
    vaultDown = true;
    expect(await post({ ...delivery('share-three'), backupSharePairId: 'pair-other' })).toBe(503);
    expect(await post({ clientId: 'client-secret-id' }, 'whsec-0123456789abcdef', '/backup/fetch')).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/nowhere/pair-secret-id', headers: { 'x-webhook-secret': 'whsec-0123456789abcdef' } })).statusCode).toBe(404);
    await app.close();

    const scraped = parsePrometheusText(await metrics.scrape());
    const outcomes = Object.fromEntries(
      scraped.samples.filter((sample) => sample.name === WEBHOOK_METRICS.deliveries.name).map((sample) => [sample.labels.outcome, sample.value]),
    );
    expect(outcomes).toEqual({ stored: 1, duplicate: 1, conflict: 1, unauthorized: 1, malformed: 1, too_large: 1, unavailable: 1 });
    const routes = new Set(scraped.samples.filter((sample) => sample.name === WEBHOOK_METRICS.requests.name).map((sample) => sample.labels.route));
    expect([...routes].sort()).toEqual(['GET unmatched', 'POST /backup', 'POST /backup/fetch']);
    for (const secret of ['client-secret-id', 'pair-secret-id', 'share-one', 'whsec-0123456789abcdef']) expect(scraped.text).not.toContain(secret);
  });
});

describe('the metrics server', () => {
  it('serves GET and HEAD /metrics only, and refuses to start on a taken port', async () => {
    const port = await freePort();
    const server = await startMetricsServer({ host: '127.0.0.1', port }, () => Promise.resolve('# TYPE x counter\nx 1\n'));
    try {
      const response = await fetch(server.url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/plain');
      expect(await response.text()).toContain('x 1');
      expect((await fetch(server.url, { method: 'HEAD' })).status).toBe(200);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(404);
      expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
      await expect(startMetricsServer({ host: '127.0.0.1', port }, () => Promise.resolve(''))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await server.close();
    }
  });
});
