#!/usr/bin/env bash
# Prints the path of a Temporal CLI binary, building it once from its Go module if needed.
# Order: $TEMPORAL_BIN, then `temporal` on PATH (if it is v1.5.1), then the cached build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tool-lib.sh"
VERSION="1.5.1"
tool_print_override "TEMPORAL_BIN=${TEMPORAL_BIN:-}" "${TEMPORAL_BIN:-}"
if command -v temporal >/dev/null 2>&1 && temporal --version 2>/dev/null | grep -q "$VERSION"; then
  command -v temporal; exit 0
fi
target="$TOOL_CACHE/temporal-$VERSION"
if [[ ! -x "$target" ]]; then
  tool_need_go "the Temporal CLI (or set TEMPORAL_BIN)"
  tool_build "building Temporal CLI v$VERSION from its Go module (one time, several minutes)..." "$target" \
    tool_go_install "$target" temporal "github.com/temporalio/cli/cmd/temporal@v$VERSION" -trimpath -ldflags "-s -w"
fi
echo "$target"
