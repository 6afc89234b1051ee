import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parse } from 'yaml';

/** The operations files checked by test/unit/ops-rules.test.ts and test/e2e/metrics.test.ts. */
const ROOT = join(__dirname, '..', '..');
export const ALERTS_PATH = join(ROOT, 'ops', 'prometheus', 'alerts.yml');
export const DASHBOARD_PATH = join(ROOT, 'ops', 'grafana', 'mpc-backup-dashboard.json');
export const TEMPORAL_SDK_METRICS_PATH = join(ROOT, 'ops', 'temporal-sdk-metrics.txt');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Query {
  /** Where the query is: `alert MpcBackupParked`, `panel "Portal 429s" A`. */
  where: string;
  expr: string;
}

export function alertRuleFile(): { groups: { name: string; interval?: string; rules: AlertRule[] }[] } {
  return parse(readFileSync(ALERTS_PATH, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] };
}

export function alertQueries(): Query[] {
  return alertRuleFile().groups.flatMap((group) => group.rules.map((rule) => ({ where: `alert ${rule.alert}`, expr: String(rule.expr) })));
}

export interface Panel {
  id?: number;
  title?: string;
  type?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: { expr?: string; refId?: string; legendFormat?: string }[];
  panels?: Panel[];
}

export interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating?: { list: { name: string; type: string; query?: unknown }[] };
  __inputs?: { name: string; type: string; pluginId: string }[];
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
export function allPanels(board: Dashboard = dashboard()): Panel[] {
  return board.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

export function dashboardQueries(board: Dashboard = dashboard()): Query[] {
  return allPanels(board).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title ?? '?'}" ${target.refId ?? '?'}`, expr: String(target.expr ?? '') })),
  );
}

/** The metrics the Temporal runtime exporter was seen to expose (captured from a real scrape): name → type. */
export function temporalSdkMetrics(): Map<string, string> {
  const entries = readFileSync(TEMPORAL_SDK_METRICS_PATH, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [name, type, ...rest] = line.split(/\s+/);
      if (!name || !type || rest.length > 0) throw new Error(`${TEMPORAL_SDK_METRICS_PATH}: not "name type": ${line}`);
      return [name, type] as const;
    });
  return new Map(entries);
}

/** The series names a family exposes (a histogram's _bucket, _sum and _count besides its own name). */
export function seriesNames(name: string, type: string): string[] {
  if (type === 'histogram') return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

export interface ParsedQuery {
  /** Offsets of syntax errors (empty when the expression parses). */
  errors: number[];
  /** Each vector selector: its metric name and the label names its matchers use. */
  selectors: { metric: string; labels: string[] }[];
  /** Labels named in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`. */
  groupingLabels: string[];
}

/** Grafana's interval variables, which are not PromQL, as durations PromQL accepts. */
function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{__(rate_interval|interval|range)\}/g, '5m');
}

/** Parses PromQL with the Prometheus project's own grammar (@prometheus-io/lezer-promql). */
export function parsePromQL(rawExpr: string): ParsedQuery {
  const expr = withoutGrafanaVariables(rawExpr);
  const tree = parser.parse(expr);
  const result: ParsedQuery = { errors: [], selectors: [], groupingLabels: [] };
  tree.iterate({
    enter(node) {
      if (node.type.isError) result.errors.push(node.from);
      if (node.name === 'VectorSelector') {
        const identifier = node.node.getChild('Identifier');
        const matchers = node.node.getChild('LabelMatchers');
        const labels: string[] = [];
        matchers?.cursor().iterate((child) => {
          if (child.name === 'LabelName') labels.push(expr.slice(child.from, child.to));
        });
        result.selectors.push({ metric: identifier ? expr.slice(identifier.from, identifier.to) : '', labels });
      }
      if (node.name === 'GroupingLabels') {
        node.node.cursor().iterate((child) => {
          if (child.name === 'LabelName') result.groupingLabels.push(expr.slice(child.from, child.to));
        });
      }
    },
  });
  if (expr.trim() === '') result.errors.push(0);
  return result;
}
