import { metricMeter } from '@temporalio/workflow';
import {
  errorTypeLabel,
  WORKFLOW_METRICS,
  type BackupOutcome,
  type BatchChildEvent,
  type MetricDefinition,
} from '../metrics/definitions';

/**
 * Workflow metrics (definitions in metrics/definitions.ts), through the SDK's workflow metricMeter:
 * each value goes out by the worker's internal metrics sink, which the SDK skips while replaying,
 * so a replayed or re-cached run does not count twice. No command and no history event is added,
 * so these calls never change what a recorded history replays to (no patch needed). They reach
 * Prometheus through the Temporal runtime's exporter (TEMPORAL_METRICS_ADDRESS); without it they
 * go nowhere. Metric objects are made per call: creating one outside a workflow context throws.
 */

function count(definition: MetricDefinition, tags: Record<string, string> = {}, value = 1): void {
  metricMeter.createCounter(definition.name, undefined, definition.help).add(value, tags);
}

export function countBackupStarted(): void {
  count(WORKFLOW_METRICS.backupsStarted);
}

export function countBackupFinished(outcome: BackupOutcome, step: string): void {
  count(WORKFLOW_METRICS.backupsFinished, { outcome, step });
}

export function countBackupParked(step: string, errorType: string | undefined): void {
  count(WORKFLOW_METRICS.backupsParked, { step, error_type: errorTypeLabel(errorType) });
}

export function recordStepDuration(step: string, outcome: 'ok' | 'error', durationMs: number): void {
  const { name, help } = WORKFLOW_METRICS.stepDuration;
  metricMeter.createHistogram(name, 'float', 's', help).record(Math.max(0, durationMs) / 1000, { step, outcome });
}

export function countBatchChildren(event: BatchChildEvent, value = 1): void {
  if (value > 0) count(WORKFLOW_METRICS.batchChildren, { event }, value);
}
