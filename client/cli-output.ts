/**
 * How every `backup` command prints its result: a readable summary by default (indented
 * `key: value` lines, lists as bullets), or the exact JSON with the global `--json` flag, which
 * scripts should use (the readable form may change).
 */
let jsonOutput = false;

export function setJsonOutput(enabled: boolean): void {
  jsonOutput = enabled;
}

/** An error as the CLI reports it: on stderr, and with `--json` also as `{error, message}` on stdout for scripts. */
export function printError(code: string, message: string): void {
  process.stderr.write(`backup: ${message}\n`);
  if (jsonOutput) process.stdout.write(`${JSON.stringify({ error: code, message }, null, 2)}\n`);
}

export function print(value: unknown): void {
  process.stdout.write(jsonOutput ? `${JSON.stringify(value, null, 2)}\n` : `${renderReadable(value)}\n`);
}

/** Renders a JSON-like value as indented `key: value` lines; empty lists and objects say so. */
export function renderReadable(value: unknown, indent = 0): string {
  const pad = ' '.repeat(indent);
  if (value === null || value === undefined) return `${pad}-`;
  if (typeof value !== 'object') return `${pad}${String(value)}`;
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}(none)`;
    return value
      .map((item) => {
        const rendered = renderReadable(item, indent + 2).trimStart();
        return `${pad}- ${rendered}`;
      })
      .join('\n');
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return `${pad}(empty)`;
  return entries
    .map(([key, v]) => {
      if (v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0)) {
        return `${pad}${key}:\n${renderReadable(v, indent + 2)}`;
      }
      return `${pad}${key}: ${renderReadable(v).trim()}`;
    })
    .join('\n');
}

/** One line of a batch's progress: a bar, counts, rate and ETA (for `batch status --watch`). */
export function progressLine(progress: {
  status: string;
  total?: number;
  counts: { started: number; completed: number; failed: number; parked: number; skipped: number; joined: number };
  inFlight: number;
  ratePerMinute: number;
  etaSeconds?: number;
}, width = 30): string {
  const { counts } = progress;
  const done = counts.completed + counts.failed + counts.parked + counts.skipped;
  const fraction = progress.total ? Math.min(1, done / progress.total) : undefined;
  const filled = fraction === undefined ? 0 : Math.round(fraction * width);
  const bar = fraction === undefined ? `[${'?'.repeat(width)}]` : `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const share = fraction === undefined ? `${done} done` : `${Math.floor(fraction * 100)}% ${done}/${progress.total}`;
  const eta = progress.etaSeconds === undefined ? '' : ` · ETA ${formatDuration(progress.etaSeconds)}`;
  return (
    `${bar} ${share} · completed ${counts.completed}, failed ${counts.failed}, parked ${counts.parked}, skipped ${counts.skipped}` +
    ` · in flight ${progress.inFlight} · ${progress.ratePerMinute.toFixed(1)}/min${eta} · ${progress.status}`
  );
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
