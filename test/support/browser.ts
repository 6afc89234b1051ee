import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/**
 * The Chromium the browser tests drive: scripts/tool-chromium.sh finds one (CHROMIUM_BIN, PATH,
 * /usr/bin/chromium) or installs Debian's `chromium` package. Playwright's own browser builds are
 * never downloaded. A failed install fails the test with the script's (apt's) own message.
 */
export function chromiumBinary(): string {
  try {
    return execFileSync('bash', [join(ROOT, 'scripts', 'tool-chromium.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`no Chromium for the browser test (scripts/tool-chromium.sh): ${stderr || String(error)}`);
  }
}
