#!/usr/bin/env bash
# Prints the path of a Chromium binary for the browser test of the Temporal Web UI
# (test/e2e/web-ui.test.ts, driven by playwright-core), installing Debian's `chromium` package
# once if none is found. Order: $CHROMIUM_BIN, then `chromium` or `chromium-browser` on PATH, then
# /usr/bin/chromium, then `apt-get install chromium`. Playwright's own browser downloads are never
# used: these machines reach Debian's package mirrors, not the download hosts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tool-lib.sh"
tool_print_override "CHROMIUM_BIN=${CHROMIUM_BIN:-}" "${CHROMIUM_BIN:-}"
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; exit 0; fi
done
if [[ -x /usr/bin/chromium ]]; then echo /usr/bin/chromium; exit 0; fi

command -v apt-get >/dev/null || { echo "no Chromium found and no apt-get to install Debian's chromium (set CHROMIUM_BIN)" >&2; exit 1; }
as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "installing chromium needs root or sudo (or set CHROMIUM_BIN)" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log" "$log.first"' EXIT
install() { "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >"$log" 2>&1; }
echo "installing Debian's chromium package (one time)..." >&2
start=$(date +%s)
# A package list that is missing, or older than the mirror (a superseded security update answers
# 404), is refreshed once and the install tried again.
if ! install; then
  mv "$log" "$log.first"
  if ! "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=300 update >"$log" 2>&1; then
    echo "apt-get install -y --no-install-recommends chromium failed:" >&2; cat "$log.first" >&2
    echo "and apt-get update failed:" >&2; cat "$log" >&2
    exit 1
  fi
  install || { echo "apt-get install -y --no-install-recommends chromium failed (after apt-get update):" >&2; cat "$log" >&2; exit 1; }
fi
for candidate in /usr/bin/chromium "$(command -v chromium 2>/dev/null || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    echo "installed $("$candidate" --version 2>/dev/null || echo chromium) in $(( $(date +%s) - start ))s" >&2
    echo "$candidate"; exit 0
  fi
done
echo "apt-get installed chromium but no chromium binary is on PATH or at /usr/bin/chromium" >&2
exit 1
