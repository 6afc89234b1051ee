import { randomBytes } from 'node:crypto';
import { operatorSigner } from '../support/operators';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { secretsOf } from '../../chaos/secret-scan';
import { BatchClient } from '../../client/batch-client';
import { DrillClient } from '../../client/drill-client';
import { WEBHOOK_METRICS, WORKER_METRICS, WORKFLOW_METRICS } from '../../metrics/definitions';
import { freePort } from '../../stack/free-port';
import { startProcess, waitUntil, type ManagedProcess } from '../../stack/managed-process';
import { waitForPollers } from '../../stack/worker-process';
import { createBackupTestEnv, eventually, waitUntilParked, type BackupTestEnv } from '../support/backup-test-env';
import { alertQueries, dashboardQueries, parsePromQL, temporalSdkMetrics } from '../support/ops-files';
import { exposedNames, labelValues, parsePrometheusText, scrape, sumOf, type Scrape } from '../support/prometheus-text';
import { coverageMetricsText, COVERAGE_PROBLEMS } from '../../client/coverage';

/**
 * Metrics end to end: the real worker process (worker/main.ts) with both exporters on free ports,
 * real backups against the simulator (one completing, one rate limited by Portal, one parked at
 * STORE and abandoned, one failing at step 1 for an unknown user, a batch of two, a restore drill),
 * and the real webhook process (webhook/main.ts) taking deliveries. Both worker endpoints and the
 * webhook's are scraped: the counters moved with the right labels, and no label (no line at all)
 * carries a user id, pair id, client id, API key, share or secret.
 */

const WEBHOOK_SECRET = `whsec-${randomBytes(12).toString('hex')}`;

let env: BackupTestEnv;
let worker: ManagedProcess;
let webhook: ManagedProcess;
let serviceUrl: string;
let temporalUrl: string;
let webhookUrl: string;
let webhookMetricsUrl: string;
/** Every user id, client id, pair id, key and share the test made: none may appear in a scrape. */
const forbidden = new Set<string>();

const users = { completed: '', rateLimited: '', parked: '', unknown: '', batch: [] as string[] };

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

beforeAll(async () => {
  const [servicePort, temporalPort, webhookPort, webhookMetricsPort] = await distinctFreePorts(4);
  env = await createBackupTestEnv({
    workerEnv: { METRICS_ADDRESS: `127.0.0.1:${servicePort}`, TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${temporalPort}` },
  });
  serviceUrl = `http://127.0.0.1:${servicePort}/metrics`;
  temporalUrl = `http://127.0.0.1:${temporalPort}/metrics`;
  worker = env.spawnWorker('metrics-worker');
  await waitForPollers(env.backups.temporal.connection, env.taskQueue, worker.exited);

  webhookUrl = `http://127.0.0.1:${webhookPort}`;
  webhookMetricsUrl = `http://127.0.0.1:${webhookMetricsPort}/metrics`;
  webhook = startProcess('webhook', process.execPath, ['--import', 'tsx', join(__dirname, '..', '..', 'webhook', 'main.ts')], {
    logFile: join(inject('runDir'), `${env.taskQueue}-webhook.log`),
    cwd: join(__dirname, '..', '..'),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      WEBHOOK_PORT: String(webhookPort),
      WEBHOOK_METRICS_ADDRESS: `127.0.0.1:${webhookMetricsPort}`,
      WEBHOOK_SECRETS: WEBHOOK_SECRET,
      DATABASE_URL: inject('databaseUrl'),
      VAULT_ADDR: inject('vaultAddr'),
      VAULT_TOKEN: inject('vaultToken'),
    },
  });
  await waitUntil('the webhook', async () => (await fetch(`${webhookUrl}/health`)).ok, 60_000, webhook.exited);
}, 240_000);

afterAll(async () => {
  await webhook?.stop();
  await env?.close();
});

function remember(userId: string): void {
  forbidden.add(userId);
  const client = env.simulator.state.user(userId);
  if (!client) return;
  forbidden.add(client.clientId);
  for (const secret of secretsOf(client)) forbidden.add(secret);
  for (const wallet of client.wallets) {
    for (const pair of [...wallet.backupSharePairs, ...wallet.signingSharePairs]) forbidden.add(pair.id);
  }
}

function expectNoIdsOrSecrets(scraped: Scrape, what: string): void {
  const values = [...labelValues(scraped)];
  for (const secret of forbidden) {
    expect(values.filter((value) => value.includes(secret)), `${what}: a label value carries ${secret.slice(0, 12)}…`).toEqual([]);
    expect(scraped.text.includes(secret), `${what}: the scrape carries ${secret.slice(0, 12)}…`).toBe(false);
  }
  // No URL (they hold ids) and nothing shaped like a bearer key or a share in a label.
  expect(values.filter((value) => value.includes('://') || /[A-Za-z0-9+/]{40,}/.test(value))).toEqual([]);
}

describe('metrics after real backups', () => {
  let service: Scrape;
  let temporal: Scrape;

  it('runs the backups: completed, rate limited, parked then abandoned, unknown user, a batch, a drill', async () => {
    users.completed = env.seedUser('metrics-ok');
    users.rateLimited = env.seedUser('metrics-429');
    users.parked = env.seedUser('metrics-park');
    users.unknown = `metrics-nobody-${randomBytes(3).toString('hex')}`;
    env.simulator.faults.add({ route: 'backup', kind: 'rate-limit', retryAfterSeconds: 1, count: 1, userId: users.rateLimited });
    env.simulator.faults.add({ route: 'storeCipherText', kind: 'status', status: 401, userId: users.parked });

    for (const userId of [users.completed, users.rateLimited, users.parked, users.unknown]) await env.backups.startBackupWorkflow(userId);
    expect((await env.backups.waitForBackup(users.completed)).status).toBe('COMPLETED');
    expect((await env.backups.waitForBackup(users.rateLimited)).status).toBe('COMPLETED');
    await expect(env.backups.waitForBackup(users.unknown)).rejects.toMatchObject({ reasonType: 'UnknownUserError' });
    expect((await waitUntilParked(env.backups, users.parked)).step).toBe('STORE');

    // The parked backup shows in the gauge (visibility, cached for 15 s per worker).
    await eventually('mpc_backup_parked_backups to count the parked backup', async () => {
      const value = sumOf(await scrape(serviceUrl), WORKER_METRICS.parkedBackups.name, { task_queue: env.taskQueue, workflow_type: 'backupWallet' });
      return value === 1 ? value : undefined;
    }, 60_000);
    await env.backups.abandonBackup(users.parked, 'metrics test: abandoned on purpose', operatorSigner('ops-mallory'));

    users.batch = [env.seedUser('metrics-batch'), env.seedUser('metrics-batch')];
    const batches = new BatchClient(env.backups.temporal, env.taskQueue);
    const { workflowId } = await batches.startBatch({ source: { kind: 'list', userIds: users.batch }, backupsPerMinute: 6_000, concurrency: 2 });
    const report = (await env.backups.temporal.workflow.getHandle(workflowId).result()) as { counts: { completed: number } };
    expect(report.counts.completed).toBe(2);

    const drills = new DrillClient(env.backups.temporal, env.taskQueue);
    const drill = await drills.wait((await drills.runOnce({ source: { kind: 'list', userIds: [users.completed, users.rateLimited] }, usersPerMinute: 6_000 })).drillId);
    expect(drill.counts).toMatchObject({ passed: 2, failed: 0 });

    for (const userId of [users.completed, users.rateLimited, users.parked, users.unknown, ...users.batch]) remember(userId);
    // Metrics leave the runtime's exporter about once a second: wait until the last ones are there.
    temporal = await eventually('the drill and batch to reach the Temporal exporter', async () => {
      const scraped = await scrape(temporalUrl);
      return sumOf(scraped, WORKFLOW_METRICS.batchChildren.name, { event: 'completed' }) >= 2 &&
        sumOf(scraped, WORKFLOW_METRICS.backupsFinished.name, { outcome: 'abandoned' }) >= 1
        ? scraped
        : undefined;
    });
    service = await scrape(serviceUrl);
    const dumps = join(inject('runDir'), `${env.taskQueue}-scrape`);
    writeFileSync(`${dumps}-service.txt`, service.text);
    writeFileSync(`${dumps}-temporal.txt`, temporal.text);
  });

  it('counts Portal calls by route template and status class, 429s apart', () => {
    const portal = WORKER_METRICS.portalRequests.name;
    expect(sumOf(service, portal, { route: 'POST /v1/backup', status_class: '2xx' })).toBeGreaterThanOrEqual(5);
    expect(sumOf(service, portal, { route: 'POST /v1/backup', status_class: '4xx' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(service, WORKER_METRICS.portalRateLimited.name, { route: 'POST /v1/backup' })).toBeGreaterThanOrEqual(1);
    // The 401s that parked the backup, under the route template (the pair id is not in it).
    expect(sumOf(service, portal, { route: 'POST /api/v3/clients/me/backup-share-pairs/{pairId}', status_class: '4xx' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(service, portal, { route: 'GET /api/v3/clients/me/backup-share-pairs/{pairId}/cipher-text', status_class: '2xx' })).toBeGreaterThanOrEqual(4);
    expect(sumOf(service, portal, { route: 'PATCH /api/v3/clients/me/backup-share-pairs', status_class: '2xx' })).toBeGreaterThanOrEqual(4);
    expect(sumOf(service, `${WORKER_METRICS.portalRequestDuration.name}_count`, { route: 'POST /v1/backup' })).toBeGreaterThanOrEqual(6);
    const routes = new Set(service.samples.filter((sample) => sample.name === portal).map((sample) => sample.labels.route));
    for (const route of routes) expect(route).toMatch(/^(GET|POST|PATCH) \/(v1|api\/v3)\/[a-z/-]*(\{pairId\}[a-z/-]*)?$/);
  });

  it('counts Vault and credentials-source calls by route template and status class', () => {
    const vault = WORKER_METRICS.vaultRequests.name;
    expect(sumOf(service, vault, { route: 'POST {mount}/encrypt/{key}', status_class: '2xx' })).toBeGreaterThanOrEqual(4);
    expect(sumOf(service, vault, { route: 'POST {mount}/decrypt/{key}', status_class: '2xx' })).toBeGreaterThanOrEqual(4);
    expect(sumOf(service, vault, { route: 'GET {mount}/keys/{key}', status_class: '2xx' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(service, `${WORKER_METRICS.vaultRequestDuration.name}_count`, { route: 'POST {mount}/encrypt/{key}' })).toBeGreaterThanOrEqual(4);
    const credentials = WORKER_METRICS.credentialsRequests.name;
    expect(sumOf(service, credentials, { status_class: '2xx' })).toBeGreaterThanOrEqual(5);
    expect(sumOf(service, credentials, { status_class: '4xx' })).toBeGreaterThanOrEqual(1); // the unknown user's 404
  });

  it('counts activity attempts, retries and failures by type and retryability', () => {
    const attempts = WORKER_METRICS.activityAttempts.name;
    const failures = WORKER_METRICS.activityFailures.name;
    expect(sumOf(service, attempts, { activity: 'mpcBackup', retry: 'false' })).toBeGreaterThanOrEqual(6);
    expect(sumOf(service, attempts, { activity: 'mpcBackup', retry: 'true' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(service, failures, { activity: 'mpcBackup', error_type: 'PortalRateLimitedError', retryable: 'true' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(service, failures, { activity: 'mpcBackup', error_type: 'UnknownUserError', retryable: 'false' })).toBe(1);
    expect(sumOf(service, failures, { activity: 'storeCiphertexts', error_type: 'PortalAuthError', retryable: 'false' })).toBe(1);
    expect(sumOf(service, attempts, { activity: 'checkDrillUsers' })).toBeGreaterThanOrEqual(1);
  });

  it('counts drill results and serves Node process metrics', () => {
    expect(sumOf(service, WORKER_METRICS.drillUsers.name, { outcome: 'passed', kind: 'none' })).toBe(2);
    expect(sumOf(service, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sumOf(service, WORKER_METRICS.parkedBackupsQueryFailures.name)).toBe(0);
  });

  it('exports the workflows’ metrics through the Temporal runtime: started, finished by outcome, parked, step durations, batch progress', () => {
    // The TypeScript SDK tags workflow metrics in camelCase (its temporal_* ones in snake_case).
    const backup = { taskQueue: env.taskQueue, workflowType: 'backupWallet' };
    expect(sumOf(temporal, WORKFLOW_METRICS.backupsStarted.name, backup)).toBe(6);
    expect(sumOf(temporal, WORKFLOW_METRICS.backupsFinished.name, { ...backup, outcome: 'completed', step: 'DONE' })).toBe(4);
    expect(sumOf(temporal, WORKFLOW_METRICS.backupsFinished.name, { ...backup, outcome: 'failed', step: 'MPC_BACKUP' })).toBe(1);
    expect(sumOf(temporal, WORKFLOW_METRICS.backupsFinished.name, { ...backup, outcome: 'abandoned', step: 'STORE' })).toBe(1);
    expect(sumOf(temporal, WORKFLOW_METRICS.backupsParked.name, { ...backup, step: 'STORE', error_type: 'PortalAuthError' })).toBe(1);
    const steps = `${WORKFLOW_METRICS.stepDuration.name}_count`;
    expect(sumOf(temporal, steps, { ...backup, step: 'MPC_BACKUP', outcome: 'ok' })).toBe(5);
    expect(sumOf(temporal, steps, { ...backup, step: 'MPC_BACKUP', outcome: 'error' })).toBe(1);
    expect(sumOf(temporal, steps, { ...backup, step: 'MARK', outcome: 'ok' })).toBe(4);
    expect(sumOf(temporal, steps, { ...backup, step: 'STORE', outcome: 'error' })).toBe(1);
    // Our buckets (seconds), not the runtime's default millisecond ones.
    const buckets = temporal.samples.filter((sample) => sample.name === `${WORKFLOW_METRICS.stepDuration.name}_bucket`).map((sample) => sample.labels.le);
    expect(buckets).toContain('0.05');
    expect(buckets).toContain('86400');
    const batch = { taskQueue: env.taskQueue, workflowType: 'batchBackup' };
    expect(sumOf(temporal, WORKFLOW_METRICS.batchChildren.name, { ...batch, event: 'started' })).toBe(2);
    expect(sumOf(temporal, WORKFLOW_METRICS.batchChildren.name, { ...batch, event: 'completed' })).toBe(2);
  });

  it('exports the SDK’s own worker metrics, every one ops/temporal-sdk-metrics.txt lists, of the type it says', () => {
    const scraped = [...temporal.types].filter(([name]) => name.startsWith('temporal_'));
    const wrong = [...temporalSdkMetrics()].filter(([name, type]) => temporal.types.get(name) !== type);
    expect(wrong, `scraped: ${scraped.map(([name, type]) => `${name} ${type}`).sort().join('; ')}`).toEqual([]);
    expect(sumOf(temporal, 'temporal_num_pollers', { task_queue: env.taskQueue })).toBeGreaterThan(0);
  });

  it('carries no user id, pair id, client id, key, share or URL in any label or line', () => {
    expect(forbidden.size).toBeGreaterThan(20);
    expectNoIdsOrSecrets(service, 'worker /metrics');
    expectNoIdsOrSecrets(temporal, 'Temporal runtime /metrics');
  });

  it('names only metrics these endpoints export, in every alert rule and dashboard query', async () => {
    const webhookScrape = await scrape(webhookMetricsUrl);
    // `backup coverage --metrics-file` is an endpoint too, through a textfile collector: its real output.
    const coverage = parsePrometheusText(
      coverageMetricsText({ users: 0, covered: 0, problems: Object.fromEntries(COVERAGE_PROBLEMS.map((p) => [p, 0])) as never, keyVersions: {}, durationMs: 0 }, Date.now()),
    );
    const exported = new Set([...exposedNames(service), ...exposedNames(temporal), ...exposedNames(webhookScrape), ...exposedNames(coverage)]);
    const unknown = [...alertQueries(), ...dashboardQueries()].flatMap(({ where, expr }) =>
      parsePromQL(expr)
        .selectors.map((selector) => selector.metric)
        .filter((metric) => metric !== 'up' && !exported.has(metric))
        .map((metric) => `${where}: ${metric}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('webhook metrics (the real webhook process)', () => {
  async function deliver(body: unknown, secret: string | null = WEBHOOK_SECRET, path = '/backup') {
    const response = await fetch(`${webhookUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(secret ? { 'x-webhook-secret': secret } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return response.status;
  }

  it('counts deliveries by outcome and requests by route template, with no client id, pair id, share or secret', async () => {
    const clientId = `client-${randomBytes(6).toString('hex')}`;
    const pairId = `pair-${randomBytes(6).toString('hex')}`;
    const share = JSON.stringify({ custodianShare: randomBytes(32).toString('hex'), pairId });
    const other = JSON.stringify({ custodianShare: randomBytes(32).toString('hex'), pairId });
    for (const value of [clientId, pairId, share, other, WEBHOOK_SECRET, JSON.parse(share).custodianShare as string]) forbidden.add(value);

    expect(await deliver({ clientId, backupMethod: 'GDRIVE', share, backupSharePairId: pairId })).toBe(200);
    expect(await deliver({ clientId, backupMethod: 'GDRIVE', share, backupSharePairId: pairId })).toBe(200);
    expect(await deliver({ clientId, backupMethod: 'GDRIVE', share: other, backupSharePairId: pairId })).toBe(409);
    expect(await deliver({ clientId, share }, 'whsec-wrong-0123456789')).toBe(401);
    expect(await deliver({ clientId })).toBe(400);
    expect(await deliver('{"clientId": ')).toBe(400);
    expect(await deliver({ clientId }, WEBHOOK_SECRET, '/backup/fetch')).toBe(200);

    const scraped = await scrape(webhookMetricsUrl);
    const deliveries = WEBHOOK_METRICS.deliveries.name;
    expect(sumOf(scraped, deliveries, { outcome: 'stored' })).toBe(1);
    expect(sumOf(scraped, deliveries, { outcome: 'duplicate' })).toBe(1);
    expect(sumOf(scraped, deliveries, { outcome: 'conflict' })).toBe(1);
    expect(sumOf(scraped, deliveries, { outcome: 'unauthorized' })).toBe(1);
    expect(sumOf(scraped, deliveries, { outcome: 'malformed' })).toBe(2);
    const requests = WEBHOOK_METRICS.requests.name;
    expect(sumOf(scraped, requests, { route: 'POST /backup', status_class: '2xx' })).toBe(2);
    expect(sumOf(scraped, requests, { route: 'POST /backup', status_class: '4xx' })).toBe(4);
    expect(sumOf(scraped, requests, { route: 'POST /backup/fetch', status_class: '2xx' })).toBe(1);
    expect(sumOf(scraped, `${WEBHOOK_METRICS.requestDuration.name}_count`, { route: 'POST /backup' })).toBe(6);
    // Its Vault calls too: one encrypt per delivery that got past validation.
    expect(sumOf(scraped, WORKER_METRICS.vaultRequests.name, { route: 'POST {mount}/encrypt/{key}', status_class: '2xx' })).toBe(3);
    writeFileSync(join(inject('runDir'), `${env.taskQueue}-scrape-webhook.txt`), scraped.text);
    expectNoIdsOrSecrets(scraped, 'webhook /metrics');
  });

  it('serves nothing but GET /metrics on the metrics address, and no /metrics on the webhook’s own port', async () => {
    expect((await fetch(webhookMetricsUrl.replace('/metrics', '/backup'), { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${webhookUrl}/metrics`, { headers: { 'x-webhook-secret': WEBHOOK_SECRET } })).status).toBe(404);
  });
});
