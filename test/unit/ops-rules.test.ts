import { describe, expect, it } from 'vitest';
import { COVERAGE_METRICS, WEBHOOK_METRICS, WORKER_METRICS, WORKFLOW_METRIC_SDK_LABELS, WORKFLOW_METRICS, type MetricDefinition } from '../../metrics/definitions';
import { createWebhookMetrics, createWorkerMetrics } from '../../metrics/service-metrics';
import { exposedNames, parsePrometheusText } from '../support/prometheus-text';
import {
  alertQueries,
  alertRuleFile,
  allPanels,
  dashboard,
  dashboardQueries,
  parsePromQL,
  seriesNames,
  temporalSdkMetrics,
  type Query,
} from '../support/ops-files';

/**
 * ops/prometheus/alerts.yml and ops/grafana/mpc-backup-dashboard.json: they parse (YAML, JSON,
 * and every expression with the Prometheus project's own PromQL grammar) and name only metrics
 * that exist, with labels those metrics have. "Exist" means: defined in metrics/definitions.ts,
 * exported by the service's real registries (Node's process metrics), or listed in
 * ops/temporal-sdk-metrics.txt, which test/e2e/metrics.test.ts checks against a real scrape of
 * the Temporal runtime's exporter. test/e2e/metrics.test.ts also checks every name against real
 * scrapes of all three endpoints.
 */

/** Labels Prometheus adds to every scraped series (target labels), whatever the exporter. */
const TARGET_LABELS = ['job', 'instance'];

interface Known {
  /** Label names of the family a series name belongs to; undefined when not checked (SDK and process metrics). */
  labels: readonly string[] | undefined;
}

async function knownMetrics(): Promise<Map<string, Known>> {
  const known = new Map<string, Known>();
  const define = (definition: MetricDefinition, extraLabels: readonly string[] = []) => {
    for (const name of seriesNames(definition.name, definition.type)) {
      const bucket = name.endsWith('_bucket') ? ['le'] : [];
      known.set(name, { labels: [...definition.labelNames, ...extraLabels, ...bucket, ...TARGET_LABELS] });
    }
  };
  // The coverage report's summary comes through a textfile collector (client/coverage.ts coverageMetricsText).
  for (const definition of [...Object.values(WORKER_METRICS), ...Object.values(WEBHOOK_METRICS), ...Object.values(COVERAGE_METRICS)]) define(definition);
  // Exported through the Temporal runtime, which adds the TypeScript SDK's tags.
  for (const definition of Object.values(WORKFLOW_METRICS)) define(definition, WORKFLOW_METRIC_SDK_LABELS);
  for (const [name, type] of temporalSdkMetrics()) for (const series of seriesNames(name, type)) known.set(series, { labels: undefined });
  // Node's process metrics, as the real registries export them (no network: the registries themselves).
  for (const text of [await createWorkerMetrics().scrape(), await createWebhookMetrics().scrape()]) {
    for (const name of exposedNames(parsePrometheusText(text))) if (!known.has(name)) known.set(name, { labels: undefined });
  }
  return known;
}

function problemsOf(queries: Query[], known: Map<string, Known>): string[] {
  const problems: string[] = [];
  for (const { where, expr } of queries) {
    const parsed = parsePromQL(expr);
    if (parsed.errors.length > 0) {
      problems.push(`${where}: does not parse at offset ${parsed.errors[0]}: ${expr}`);
      continue;
    }
    if (parsed.selectors.length === 0) problems.push(`${where}: names no metric`);
    const labelsInQuery = new Set<string>(TARGET_LABELS);
    for (const { metric, labels } of parsed.selectors) {
      const entry = known.get(metric);
      if (!entry) {
        problems.push(`${where}: names ${metric || '(a selector without a metric name)'}, which no endpoint exports`);
        continue;
      }
      if (entry.labels === undefined) {
        labels.forEach((label) => labelsInQuery.add(label));
        // SDK metrics: their labels are the SDK's; `absent()`/matchers on them are checked by the e2e test's scrape.
        continue;
      }
      entry.labels.forEach((label) => labelsInQuery.add(label));
      for (const label of labels) {
        if (!entry.labels.includes(label)) problems.push(`${where}: ${metric} has no label ${label} (it has ${entry.labels.join(', ')})`);
      }
    }
    const sdkMetricInQuery = parsed.selectors.some(({ metric }) => known.get(metric)?.labels === undefined);
    for (const label of parsed.groupingLabels) {
      if (label === 'le' || labelsInQuery.has(label) || sdkMetricInQuery) continue;
      problems.push(`${where}: groups by ${label}, a label none of its metrics has`);
    }
  }
  return problems;
}

describe('alert rules (ops/prometheus/alerts.yml)', () => {
  it('parse as Prometheus rule groups, each alert named, with a severity, a summary and a valid `for`', () => {
    const file = alertRuleFile();
    expect(file.groups.length).toBeGreaterThan(0);
    const names = file.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(new Set(names).size).toBe(names.length);
    for (const group of file.groups) {
      expect(group.name).toMatch(/\S/);
      for (const rule of group.rules) {
        expect(Object.keys(rule).every((key) => ['alert', 'expr', 'for', 'labels', 'annotations', 'keep_firing_for'].includes(key)), rule.alert).toBe(true);
        expect(rule.alert).toMatch(/^MpcBackup[A-Za-z]+$/);
        expect(typeof rule.expr).toBe('string');
        if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smhd]$/);
        expect(['critical', 'warning']).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary, rule.alert).toMatch(/\S/);
      }
    }
  });

  it('alert at once when the audit trail fails verification (mpc_backup_audit_chain_ok is 0), and when it cannot be verified', () => {
    const rules = new Map(alertRuleFile().groups.flatMap((group) => group.rules.map((rule) => [rule.alert, rule] as const)));
    const tampered = rules.get('MpcBackupAuditChainTampered');
    expect(tampered).toMatchObject({ expr: `min(${WORKER_METRICS.auditChainOk.name}) == 0`, labels: { severity: 'critical' } });
    expect(tampered?.for).toBeUndefined();
    expect(rules.get('MpcBackupAuditChainUnverifiable')?.expr).toContain(WORKER_METRICS.auditChainVerifyFailures.name);
  });

  it('cover what the issue asks: parked over 15 minutes, failure rate, Portal 429s, webhook failures, drill failures, no worker polling', () => {
    const rules = new Map(alertRuleFile().groups.flatMap((group) => group.rules.map((rule) => [rule.alert, rule] as const)));
    expect(rules.get('MpcBackupParked')).toMatchObject({ for: '15m', expr: expect.stringContaining(WORKER_METRICS.parkedBackups.name) });
    expect(rules.get('MpcBackupFailureRate')?.expr).toContain(WORKFLOW_METRICS.backupsFinished.name);
    expect(rules.get('MpcBackupPortalRateLimited')?.expr).toContain(WORKER_METRICS.portalRateLimited.name);
    expect(rules.get('MpcBackupWebhookFailing')?.expr).toContain(WEBHOOK_METRICS.deliveries.name);
    expect(rules.get('MpcBackupDrillFailures')?.expr).toContain(WORKER_METRICS.drillUsers.name);
    expect(rules.get('MpcBackupNoWorkerPolling')?.expr).toContain('temporal_num_pollers');
  });

  it('every expression parses and names only existing metrics, with labels they have', async () => {
    const known = await knownMetrics();
    expect(problemsOf(alertQueries(), known)).toEqual([]);
  });
});

describe('Grafana dashboard (ops/grafana/mpc-backup-dashboard.json)', () => {
  it('is an importable dashboard: a uid, a Prometheus datasource variable, unique panel ids, panels on the grid without overlaps', () => {
    const board = dashboard();
    expect(board.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(board.templating?.list).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' })]));
    const panels = allPanels(board);
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = panels.map((panel) => ({ title: panel.title, ...panel.gridPos! }));
    for (const box of boxes) {
      expect(box.x + box.w, box.title).toBeLessThanOrEqual(24);
      expect(box.w * box.h, box.title).toBeGreaterThan(0);
    }
    const overlaps = boxes.flatMap((a, i) =>
      boxes.slice(i + 1).filter((b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h).map((b) => `${a.title} / ${b.title}`),
    );
    expect(overlaps).toEqual([]);
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      const refIds = panel.targets!.map((target) => target.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
    }
  });

  it('every query parses and names only existing metrics, with labels they have', async () => {
    const known = await knownMetrics();
    expect(problemsOf(dashboardQueries(), known)).toEqual([]);
  });

  it('shows or alerts on every metric the service defines', () => {
    const used = new Set(
      [...alertQueries(), ...dashboardQueries()].flatMap(({ expr }) => parsePromQL(expr).selectors.map(({ metric }) => metric.replace(/_(bucket|sum|count)$/, ''))),
    );
    const unused = [...Object.values(WORKER_METRICS), ...Object.values(WEBHOOK_METRICS), ...Object.values(WORKFLOW_METRICS)]
      .map((definition) => definition.name)
      .filter((name) => !used.has(name));
    expect(unused).toEqual([]);
  });
});

describe('the checks themselves', () => {
  it('catch a syntax error, an unknown metric, a label the metric lacks and a grouping label nobody has', async () => {
    const known = await knownMetrics();
    const problems = problemsOf(
      [
        { where: 'a', expr: 'sum(rate(mpc_backup_started_total[5m])' },
        { where: 'b', expr: 'rate(mpc_backup_portal_requests_totl[5m])' },
        { where: 'c', expr: 'rate(mpc_backup_portal_requests_total{status="500"}[5m])' },
        { where: 'd', expr: 'sum by (user_id) (rate(mpc_backup_portal_requests_total[5m]))' },
        { where: 'e', expr: 'histogram_quantile(0.9, sum by (le, route) (rate(mpc_backup_portal_request_duration_seconds_bucket[$__rate_interval])))' },
      ],
      known,
    );
    expect(problems).toEqual([
      expect.stringMatching(/^a: does not parse/),
      expect.stringMatching(/^b: names mpc_backup_portal_requests_totl/),
      expect.stringMatching(/^c: mpc_backup_portal_requests_total has no label status/),
      expect.stringMatching(/^d: groups by user_id/),
    ]);
  });
});
