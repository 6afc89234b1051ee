/**
 * Every metric the service exports, defined once: name, help, type, label names (and buckets).
 *
 * Three groups, by where they are exported:
 * - WORKER_METRICS: the worker process's own registry (prom-client), served on METRICS_ADDRESS.
 * - WEBHOOK_METRICS: the webhook process's registry, served on WEBHOOK_METRICS_ADDRESS (with the
 *   Vault families of WORKER_METRICS for its own Transit calls).
 * - WORKFLOW_METRICS: emitted by workflow code through `@temporalio/workflow`'s metricMeter, so
 *   exported by the Temporal runtime's Prometheus exporter (TEMPORAL_METRICS_ADDRESS) beside the
 *   SDK's own `temporal_*` metrics. The TypeScript SDK tags them `namespace`, `taskQueue` and
 *   `workflowType` (camelCase, unlike the `task_queue` and `workflow_type` of its `temporal_*` ones).
 *
 * Labels carry route templates, status classes, steps, activity and error type names and
 * outcomes: bounded sets, never a user id, pair id, client id, URL or secret.
 *
 * This file is imported by workflow code (bundled into Temporal's sandbox): plain data, no imports.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  /** Histograms only: bucket upper bounds. */
  readonly buckets?: readonly number[];
}

/** HTTP calls to a dependency, by how they ended. */
export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx', 'timeout', 'network'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Latency of one HTTP call to a dependency, in seconds. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;
/** A backup step from its first attempt to its end: retries, backoff and time parked included. */
const STEP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21_600, 86_400] as const;

function counter(name: string, help: string, labelNames: readonly string[] = []): MetricDefinition {
  return { name, help, type: 'counter', labelNames };
}
function gauge(name: string, help: string, labelNames: readonly string[] = []): MetricDefinition {
  return { name, help, type: 'gauge', labelNames };
}
function histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): MetricDefinition {
  return { name, help, type: 'histogram', labelNames, buckets };
}

export const WORKER_METRICS = {
  portalRequests: counter(
    'mpc_backup_portal_requests_total',
    'Calls to Portal (Enclave MPC API and Portal API) by route template and how they ended (status class, timeout or network error).',
    ['route', 'status_class'],
  ),
  portalRequestDuration: histogram(
    'mpc_backup_portal_request_duration_seconds',
    'Duration of calls to Portal, by route template and status class.',
    ['route', 'status_class'],
    HTTP_BUCKETS,
  ),
  portalRateLimited: counter(
    'mpc_backup_portal_rate_limited_total',
    'Portal answers 429 (rate limited), by route template. Retried after Retry-After.',
    ['route'],
  ),
  vaultRequests: counter(
    'mpc_backup_vault_requests_total',
    'Calls to Vault Transit by route template ({mount}, {key}) and how they ended.',
    ['route', 'status_class'],
  ),
  vaultRequestDuration: histogram(
    'mpc_backup_vault_request_duration_seconds',
    'Duration of calls to Vault Transit, by route template and status class.',
    ['route', 'status_class'],
    HTTP_BUCKETS,
  ),
  credentialsRequests: counter(
    'mpc_backup_credentials_requests_total',
    'Calls to the company backend’s credentials source (CREDENTIALS_URL) by how they ended.',
    ['status_class'],
  ),
  credentialsRequestDuration: histogram(
    'mpc_backup_credentials_request_duration_seconds',
    'Duration of calls to the credentials source, by status class.',
    ['status_class'],
    HTTP_BUCKETS,
  ),
  activityAttempts: counter(
    'mpc_backup_activity_attempts_total',
    'Activity attempts started on this worker, by activity type and whether it is a retry (attempt > 1).',
    ['activity', 'retry'],
  ),
  activityFailures: counter(
    'mpc_backup_activity_failures_total',
    'Activity attempts that failed, by activity type, error type and whether the error is retryable (false: the step parks or the run fails).',
    ['activity', 'error_type', 'retryable'],
  ),
  drillUsers: counter(
    'mpc_backup_drill_users_total',
    'Users checked by restore drills, by outcome (passed, failed, skipped, inconclusive) and failure kind (none unless failed).',
    ['outcome', 'kind'],
  ),
  parkedBackups: gauge(
    'mpc_backup_parked_backups',
    'Backups (workflow_type backupWallet) and recoveries (recoverWallet) parked as NEEDS_ATTENTION now on the worker’s task queue, from Temporal visibility (every worker of a queue reports the same count: aggregate with max by task_queue, workflow_type).',
    ['task_queue', 'workflow_type'],
  ),
  vaultAccessDenied: gauge(
    'mpc_backup_vault_access_denied',
    '1 while Vault refuses this worker\'s token for Transit (checked before each backup asks Portal for shares), else 0. Backups wait at step 1 meanwhile.',
  ),
  auditChainOk: gauge(
    'mpc_backup_audit_chain_ok',
    '1 when the last verification of the audit trail (hash chain and seals signed with the Vault key signing_key) found nothing wrong, 0 when it found a row changed, inserted or removed, a seal that does not hold, or rows left unsealed too long. No sample until the first verification (a worker without the database or Vault exports none).',
    ['signing_key'],
  ),
  auditChainVerifyFailures: counter(
    'mpc_backup_audit_chain_verify_failures_total',
    'Verifications of the audit trail that could not run (database or Vault unreachable, no permission): mpc_backup_audit_chain_ok then keeps its last value.',
  ),
  parkedBackupsQueryFailures: counter(
    'mpc_backup_parked_backups_query_failures_total',
    'Visibility queries for mpc_backup_parked_backups that failed (the gauge then keeps its last value).',
  ),
} as const satisfies Record<string, MetricDefinition>;

export const WEBHOOK_DELIVERY_OUTCOMES = [
  'stored',
  'duplicate',
  'conflict',
  'malformed',
  'unauthorized',
  'forbidden',
  'too_large',
  'unavailable',
  'error',
] as const;
export type WebhookDeliveryOutcome = (typeof WEBHOOK_DELIVERY_OUTCOMES)[number];

export const WEBHOOK_METRICS = {
  deliveries: counter(
    'mpc_backup_webhook_deliveries_total',
    'Custodian-share deliveries (POST /backup) by outcome: stored, duplicate, conflict (409), malformed (400), unauthorized (401), forbidden (403), too_large (413), unavailable (503, Portal reports FAILED_WEBHOOK), error (500).',
    ['outcome'],
  ),
  requests: counter(
    'mpc_backup_webhook_requests_total',
    'Requests to the webhook by route template and status class.',
    ['route', 'status_class'],
  ),
  requestDuration: histogram(
    'mpc_backup_webhook_request_duration_seconds',
    'Duration of webhook requests by route template and status class (Portal gives up after 10 s).',
    ['route', 'status_class'],
    HTTP_BUCKETS,
  ),
} as const satisfies Record<string, MetricDefinition>;

/**
 * The summary of the last `backup coverage` report, written by `--metrics-file` for a textfile
 * collector (node_exporter's), since the report runs as a job, not a server.
 */
export const COVERAGE_METRICS = {
  users: gauge(
    'mpc_backup_coverage_users',
    'Users of the last coverage report, by problem: covered (none), NO_BACKUP, STALE, PARKED, DRILL_FAILED, COPY_MISSING (a store that keeps copies lacks one), UNCHECKED.',
    ['problem'],
  ),
  usersTotal: gauge('mpc_backup_coverage_users_total', 'Users the last coverage report looked at.'),
  lastRun: gauge('mpc_backup_coverage_last_run_timestamp_seconds', 'When the last coverage report finished (Unix seconds).'),
} as const satisfies Record<string, MetricDefinition>;

export const BACKUP_OUTCOMES = ['completed', 'failed', 'abandoned', 'cancelled'] as const;
export type BackupOutcome = (typeof BACKUP_OUTCOMES)[number];

export const BATCH_CHILD_EVENTS = ['started', 'joined', 'skipped', 'completed', 'failed', 'parked'] as const;
export type BatchChildEvent = (typeof BATCH_CHILD_EVENTS)[number];

/** Emitted from workflow code (never during replay); exported by the Temporal runtime's exporter. */
export const WORKFLOW_METRICS = {
  backupsStarted: counter('mpc_backup_started_total', 'Backups (backupWallet runs) started.'),
  backupsFinished: counter(
    'mpc_backup_finished_total',
    'Backups that ended, by outcome (completed, failed at step 1, abandoned by an operator, cancelled) and the step they ended at.',
    ['outcome', 'step'],
  ),
  backupsParked: counter(
    'mpc_backup_parked_total',
    'Times a backup parked as NEEDS_ATTENTION, by step and error type.',
    ['step', 'error_type'],
  ),
  stepDuration: histogram(
    'mpc_backup_step_duration_seconds',
    'Duration of a backup step from its first attempt to its end (retries, backoff and time parked included), by step and outcome (ok or error).',
    ['step', 'outcome'],
    STEP_BUCKETS,
  ),
  batchChildren: counter(
    'mpc_backup_batch_children_total',
    'Batch progress: users whose backup a batch started, joined or skipped, and how started or joined backups ended (completed, failed, parked).',
    ['event'],
  ),
} as const satisfies Record<string, MetricDefinition>;

/** The labels the TypeScript SDK (1.24) adds to every workflow metric: camelCase, as a real scrape shows. */
export const WORKFLOW_METRIC_SDK_LABELS = ['namespace', 'taskQueue', 'workflowType'] as const;

/** A status class for an HTTP status, or how a call without one ended. */
export function statusClassOf(status: number | undefined, failure?: 'timeout' | 'network'): StatusClass {
  if (status === undefined || !Number.isInteger(status) || status < 100 || status > 599) return failure ?? 'network';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}

/**
 * An error type name as a label value: class-like names only (`PortalAuthError`, `TimeoutFailure`);
 * anything else becomes `Other`, so a message or an id can never become a label.
 */
export function errorTypeLabel(name: string | undefined): string {
  return typeof name === 'string' && /^[A-Z][A-Za-z0-9]{1,79}$/.test(name) ? name : 'Other';
}
