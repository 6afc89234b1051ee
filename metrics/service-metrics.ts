import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DRILL_FAILURE_KINDS } from '../contracts/restore-drill-api';
import {
  errorTypeLabel,
  statusClassOf,
  WEBHOOK_METRICS,
  WORKER_METRICS,
  type MetricDefinition,
  type WebhookDeliveryOutcome,
} from './definitions';

/**
 * The service's own metrics (prom-client), behind small interfaces the adapters take. Code and
 * tests that want no metrics pass the NO_* objects. Recording never throws: a metric problem must
 * not fail a call, an activity or a webhook delivery.
 */

/** One finished HTTP call to a dependency (Portal, Vault, the credentials source). */
export interface CallRecord {
  /** A route template such as `GET /api/v3/clients/me/backup-share-pairs/{pairId}/cipher-text`: never a URL with ids. */
  route: string;
  /** The HTTP status, when the call got an answer. */
  status?: number;
  /** How a call without an answer ended. */
  failure?: 'timeout' | 'network';
  seconds: number;
}

export interface CallMetrics {
  record(call: CallRecord): void;
}

export interface ActivityMetrics {
  attempt(activity: string, attempt: number): void;
  failure(activity: string, errorType: string, retryable: boolean): void;
}

export interface DrillMetrics {
  /** One user's drill outcome; `kind` is the failure kind, `none` unless failed. */
  user(outcome: 'passed' | 'failed' | 'skipped' | 'inconclusive', kind: string): void;
}

export interface WorkerMetrics {
  portal: CallMetrics;
  vault: CallMetrics;
  credentials: CallMetrics;
  activities: ActivityMetrics;
  drill: DrillMetrics;
  /** Whether Vault refuses this worker's token now (VaultAccessCheck's verdict). */
  vaultAccess(denied: boolean): void;
  /** The outcome of one verification of the audit trail (seals of the Vault key `signingKey`): ok, tampered, or could not run. */
  auditVerified(outcome: 'ok' | 'tampered' | 'unverifiable', signingKey: string): void;
  /** The parked-backups gauge reads this (cached) on each scrape: counts by workflow type on `taskQueue`. */
  observeParkedBackups(taskQueue: string, count: () => Promise<Record<string, number>>): void;
  /** The Prometheus text of this process's registry (empty for the no-op). */
  scrape(): Promise<string>;
}

export interface WebhookMetrics {
  /** The webhook's Vault Transit calls (the same families as the worker's). */
  vault: CallMetrics;
  delivery(outcome: WebhookDeliveryOutcome): void;
  request(route: string, status: number, seconds: number): void;
  scrape(): Promise<string>;
}

const noCalls: CallMetrics = { record() {} };

export const NO_WORKER_METRICS: WorkerMetrics = {
  portal: noCalls,
  vault: noCalls,
  credentials: noCalls,
  activities: { attempt() {}, failure() {} },
  drill: { user() {} },
  vaultAccess() {},
  auditVerified() {},
  observeParkedBackups() {},
  scrape: () => Promise.resolve(''),
};

export const NO_WEBHOOK_METRICS: WebhookMetrics = { vault: noCalls, delivery() {}, request() {}, scrape: () => Promise.resolve('') };

/** Never let a metric problem reach the caller. */
function safely(record: () => void): void {
  try {
    record();
  } catch {
    // A label the definition does not have, or similar: a bug in the metrics, not in the call.
  }
}

function counterOf(definition: MetricDefinition, registry: Registry): Counter {
  return new Counter({ name: definition.name, help: definition.help, labelNames: [...definition.labelNames], registers: [registry] });
}

function histogramOf(definition: MetricDefinition, registry: Registry): Histogram {
  return new Histogram({
    name: definition.name,
    help: definition.help,
    labelNames: [...definition.labelNames],
    buckets: [...(definition.buckets ?? [])],
    registers: [registry],
  });
}

function callMetrics(total: Counter, duration: Histogram, rateLimited?: Counter, routeLabel = true): CallMetrics {
  return {
    record(call) {
      safely(() => {
        const labels = { ...(routeLabel ? { route: call.route } : {}), status_class: statusClassOf(call.status, call.failure) };
        total.inc(labels);
        duration.observe(labels, Math.max(0, call.seconds));
        if (call.status === 429) rateLimited?.inc({ route: call.route });
      });
    },
  };
}

/** How long a cached count of parked backups is reused, and how long a count may take. */
const PARKED_CACHE_MS = 15_000;
const PARKED_QUERY_TIMEOUT_MS = 5_000;

/** The worker process's registry: Node's process metrics plus WORKER_METRICS. */
export function createWorkerMetrics(options: { parkedCacheMs?: number } = {}): WorkerMetrics {
  const parkedCacheMs = options.parkedCacheMs ?? PARKED_CACHE_MS;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const m = WORKER_METRICS;
  const attempts = counterOf(m.activityAttempts, registry);
  const failures = counterOf(m.activityFailures, registry);
  const drillUsers = counterOf(m.drillUsers, registry);
  const vaultAccessDenied = new Gauge({ name: m.vaultAccessDenied.name, help: m.vaultAccessDenied.help, registers: [registry] });
  // Labelled, so that it has no sample (rather than 0, which would alert) until a verification ran.
  const auditChainOk = new Gauge({ name: m.auditChainOk.name, help: m.auditChainOk.help, labelNames: [...m.auditChainOk.labelNames], registers: [registry] });
  const auditVerifyFailures = counterOf(m.auditChainVerifyFailures, registry);
  let countParked: { taskQueue: string; count: () => Promise<Record<string, number>> } | undefined;
  let cachedAt: number | undefined;
  /** The count in progress for this scrape: the failures counter waits for it, so both agree. */
  let refreshing: Promise<void> = Promise.resolve();
  // Registered before the failures counter: a scrape collects in registration order.
  const parked = new Gauge({
    name: m.parkedBackups.name,
    help: m.parkedBackups.help,
    labelNames: [...m.parkedBackups.labelNames],
    registers: [registry],
    collect() {
      refreshing = refreshParked();
      return refreshing;
    },
  });
  const parkedQueryFailures = new Counter({
    name: m.parkedBackupsQueryFailures.name,
    help: m.parkedBackupsQueryFailures.help,
    registers: [registry],
    collect: () => refreshing,
  });
  async function refreshParked(): Promise<void> {
    if (!countParked || (cachedAt !== undefined && Date.now() - cachedAt < parkedCacheMs)) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const counts = await Promise.race([
        countParked.count(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('visibility count timed out')), PARKED_QUERY_TIMEOUT_MS);
        }),
      ]);
      cachedAt = Date.now();
      for (const [type, value] of Object.entries(counts)) parked.set({ task_queue: countParked.taskQueue, workflow_type: type }, value);
    } catch {
      // Temporal unreachable: keep the last value (alerts on it keep their state) and say so.
      parkedQueryFailures.inc();
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    portal: callMetrics(counterOf(m.portalRequests, registry), histogramOf(m.portalRequestDuration, registry), counterOf(m.portalRateLimited, registry)),
    vault: callMetrics(counterOf(m.vaultRequests, registry), histogramOf(m.vaultRequestDuration, registry)),
    credentials: callMetrics(counterOf(m.credentialsRequests, registry), histogramOf(m.credentialsRequestDuration, registry), undefined, false),
    activities: {
      attempt(activity, attempt) {
        safely(() => attempts.inc({ activity, retry: String(attempt > 1) }));
      },
      failure(activity, errorType, retryable) {
        safely(() => failures.inc({ activity, error_type: errorTypeLabel(errorType), retryable: String(retryable) }));
      },
    },
    drill: {
      user(outcome, kind) {
        const known = (DRILL_FAILURE_KINDS as readonly string[]).includes(kind);
        safely(() => drillUsers.inc({ outcome, kind: outcome !== 'failed' ? 'none' : known ? kind : 'Other' }));
      },
    },
    vaultAccess(denied) {
      safely(() => vaultAccessDenied.set(denied ? 1 : 0));
    },
    auditVerified(outcome, signingKey) {
      safely(() => (outcome === 'unverifiable' ? auditVerifyFailures.inc() : auditChainOk.set({ signing_key: signingKey }, outcome === 'ok' ? 1 : 0)));
    },
    observeParkedBackups(taskQueue, count) {
      countParked = { taskQueue, count };
      cachedAt = undefined;
    },
    scrape: () => registry.metrics(),
  };
}

/** The webhook process's registry: Node's process metrics, WEBHOOK_METRICS and its Vault calls. */
export function createWebhookMetrics(): WebhookMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const deliveries = counterOf(WEBHOOK_METRICS.deliveries, registry);
  const requests = counterOf(WEBHOOK_METRICS.requests, registry);
  const duration = histogramOf(WEBHOOK_METRICS.requestDuration, registry);
  return {
    vault: callMetrics(counterOf(WORKER_METRICS.vaultRequests, registry), histogramOf(WORKER_METRICS.vaultRequestDuration, registry)),
    delivery(outcome) {
      safely(() => deliveries.inc({ outcome }));
    },
    request(route, status, seconds) {
      safely(() => {
        const labels = { route, status_class: statusClassOf(status) };
        requests.inc(labels);
        duration.observe(labels, Math.max(0, seconds));
      });
    },
    scrape: () => registry.metrics(),
  };
}

/** The outcome of a failed HTTP call without going through a client's types (axios, node-vault's request). */
export function httpFailureOf(error: unknown): Pick<CallRecord, 'status' | 'failure'> {
  const response = (error as { response?: { status?: unknown; statusCode?: unknown } } | undefined)?.response;
  const status = typeof response?.status === 'number' ? response.status : typeof response?.statusCode === 'number' ? response.statusCode : undefined;
  if (status !== undefined) return { status };
  const code = (error as { code?: unknown } | undefined)?.code;
  return { failure: code === 'ECONNABORTED' || code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT' ? 'timeout' : 'network' };
}

/** Seconds since `startedAt` (a performance.now() reading). */
export function secondsSince(startedAt: number): number {
  return (performance.now() - startedAt) / 1000;
}
