import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { ActivityMetrics } from './service-metrics';

/**
 * Counts every activity attempt on this worker, retries (attempt > 1) apart, and every failed
 * attempt by error type and whether it is retryable: one place for all activities (backup steps,
 * recovery, drills, batches, key rotation), as a Temporal activity interceptor. The error types are
 * the ApplicationFailure types the activity boundary sets (the domain error names); a cancellation
 * is not a failure and is not counted as one.
 */
export function activityMetricsInterceptor(metrics: ActivityMetrics): ActivityInterceptorsFactory {
  return (context) => ({
    inbound: {
      async execute(input, next) {
        const { activityType, attempt } = context.info;
        metrics.attempt(activityType, attempt);
        try {
          return await next(input);
        } catch (error) {
          if (!(error instanceof CancelledFailure)) {
            const failure = error instanceof ApplicationFailure ? error : undefined;
            const type = failure ? (failure.type ?? 'ApplicationFailure') : error instanceof Error ? error.name : 'Other';
            metrics.failure(activityType, type, !failure?.nonRetryable);
          }
          throw error;
        }
      },
    },
  });
}
