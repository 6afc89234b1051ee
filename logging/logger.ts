import pino from 'pino';
import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';

/**
 * Structured JSON logs (pino) for the worker and the SDK. Values under these keys are censored
 * wherever they appear, as a second line of defence: code never logs them on purpose.
 */
export const REDACTED_KEYS = [
  'clientApiKey',
  'apiKey',
  'token',
  'share',
  'shares',
  'generateResponse',
  'plaintext',
  'authorization',
  'Authorization',
  'X-Vault-Token',
  'x-webhook-secret',
  'X-Webhook-Secret',
  'secret',
];

export function createLogger(level: string, service = 'mpc-backup-worker', destination?: pino.DestinationStream) {
  const options = {
    level,
    base: { service, pid: process.pid },
    redact: { paths: [...REDACTED_KEYS, ...REDACTED_KEYS.map((key) => `*.${key}`)], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A command's log, on stderr: its stdout is the command's answer, which scripts parse (`--json`). */
export function createCommandLogger(level: string, service: string) {
  return createLogger(level, service, pino.destination(2));
}

/** Routes the Temporal SDK's log entries (worker, workflows, activities) into pino. */
export function temporalLogger(logger: pino.Logger, level: LogLevel): DefaultLogger {
  const method: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  return new DefaultLogger(level, (entry: LogEntry) => {
    logger[method[entry.level]]({ ...entry.meta, sdk: true }, entry.message);
  });
}
