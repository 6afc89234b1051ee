import type { MetricsExporterConfig } from '@temporalio/worker';
import { WORKFLOW_METRICS } from './definitions';

/**
 * The Temporal runtime's Prometheus exporter (`Runtime.install({telemetryOptions: {metrics}})`):
 * the SDK's own `temporal_*` worker metrics (pollers, task slots, latencies, failures) plus the
 * workflow metrics of metrics/definitions.ts, on `GET http://<bindAddress>/metrics`. The SDK's
 * defaults are kept (no `_total` suffix added, durations in milliseconds, as Temporal's own
 * dashboards expect); our workflow histogram gets its own buckets, in seconds.
 */
export function temporalRuntimeMetrics(bindAddress: string): MetricsExporterConfig {
  const histogramBucketOverrides = Object.fromEntries(
    Object.values(WORKFLOW_METRICS)
      .filter((definition) => definition.type === 'histogram')
      .map((definition) => [definition.name, [...(definition.buckets ?? [])]]),
  );
  return { prometheus: { bindAddress, histogramBucketOverrides } };
}
