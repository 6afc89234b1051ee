#!/usr/bin/env bash
# Prints the path of a Temporal CLI binary, building it once from its Go module if needed.
# Order: $TEMPORAL_BIN, then `temporal` on PATH (if it is v1.5.1), then the cached build.
set -euo pipefail
VERSION="1.5.1"
CACHE="${MPC_BACKUP_CACHE:-$HOME/.cache/mpc-backup}/bin"
if [[ -n "${TEMPORAL_BIN:-}" ]]; then
  [[ -x "$TEMPORAL_BIN" ]] || { echo "TEMPORAL_BIN=$TEMPORAL_BIN is not an executable file" >&2; exit 1; }
  echo "$TEMPORAL_BIN"; exit 0
fi
if command -v temporal >/dev/null 2>&1 && temporal --version 2>/dev/null | grep -q "$VERSION"; then
  command -v temporal; exit 0
fi
target="$CACHE/temporal-$VERSION"
if [[ ! -x "$target" ]]; then
  command -v go >/dev/null || { echo "Go is needed to build the Temporal CLI (or set TEMPORAL_BIN)" >&2; exit 1; }
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  echo "building Temporal CLI v$VERSION from its Go module (one time, several minutes)..." >&2
  start=$(date +%s)
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/temporalio/cli/cmd/temporal@v$VERSION" >&2
  mv "$tmp/temporal" "$target"
  rm -rf "$tmp"
  echo "built $target in $(( $(date +%s) - start ))s" >&2
fi
echo "$target"
