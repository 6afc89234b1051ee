import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');

/**
 * Paths of the real servers, from the project's scripts: TEMPORAL_BIN / VAULT_BIN / LOCAL_KMS_BIN or a binary on
 * PATH first, else a cached build from the Go module proxy (built on first use).
 */
export function toolBinary(tool: 'temporal' | 'vault' | 'local-kms'): string {
  return execFileSync('bash', [join(ROOT, 'scripts', `tool-${tool}.sh`)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/**
 * The Temporal server's own binaries (scripts/tool-temporal-server.sh, where their versions are
 * pinned): `server` (temporal-server), `sql` (temporal-sql-tool) and `ui` (the Web UI server);
 * TEMPORAL_SERVER_BIN, TEMPORAL_SQL_TOOL_BIN, TEMPORAL_UI_SERVER_BIN first, else the cached build.
 */
export function temporalServerBinary(which: 'server' | 'sql' | 'ui'): string {
  return execFileSync('bash', [join(ROOT, 'scripts', 'tool-temporal-server.sh'), which], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** The pinned versions of the Temporal server and of its Web UI server (never builds anything). */
export function temporalServerVersions(): { server: string; ui: string } {
  const ask = (what: string) => execFileSync('bash', [join(ROOT, 'scripts', 'tool-temporal-server.sh'), what], { encoding: 'utf8' }).trim();
  return { server: ask('version'), ui: ask('ui-version') };
}
