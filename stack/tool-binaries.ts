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
