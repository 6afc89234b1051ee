#!/usr/bin/env bash
# Prints the path of the Temporal server binary (`server`, the default), of its SQL schema tool
# (`sql`) or of the Temporal Web UI server (`ui`), building them once from their Go modules if needed.
# Order: $TEMPORAL_SERVER_BIN / $TEMPORAL_SQL_TOOL_BIN / $TEMPORAL_UI_SERVER_BIN, then the cached
# build of the pinned version. `version` and `ui-version` print the pins. The versions are pinned
# here only: stack/temporal-cluster.ts asks this script, and test/unit/docker-compose.test.ts checks
# that docker-compose.yml uses the same ones.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tool-lib.sh"
TEMPORAL_SERVER_VERSION="1.31.2"
# The UI the CLI v1.5.1 embeds (its go.mod), and the image docker-compose.yml runs.
TEMPORAL_UI_VERSION="2.42.1"
what="${1:-server}"
case "$what" in
  server) override="${TEMPORAL_SERVER_BIN:-}"; target="$TOOL_CACHE/temporal-server-$TEMPORAL_SERVER_VERSION" ;;
  sql) override="${TEMPORAL_SQL_TOOL_BIN:-}"; target="$TOOL_CACHE/temporal-sql-tool-$TEMPORAL_SERVER_VERSION" ;;
  ui) override="${TEMPORAL_UI_SERVER_BIN:-}"; target="$TOOL_CACHE/temporal-ui-server-$TEMPORAL_UI_VERSION" ;;
  version) echo "$TEMPORAL_SERVER_VERSION"; exit 0 ;;
  ui-version) echo "$TEMPORAL_UI_VERSION"; exit 0 ;;
  *) echo "usage: $0 [server|sql|ui|version|ui-version]" >&2; exit 2 ;;
esac
tool_print_override "$override" "$override"
[[ -x "$target" ]] || tool_need_go "$target (or set the *_BIN variable above)"
mkdir -p "$TOOL_CACHE"
# Static, small binaries, built by the local Go at low priority (they take minutes).
GO_FLAGS=(-trimpath -ldflags "-s -w")
if [[ "$what" == ui ]]; then
  if [[ ! -x "$target" ]]; then
    exec 9>"$TOOL_CACHE/.temporal-ui-server.lock"
    flock 9
    if [[ ! -x "$target" ]]; then
      build() {
        GOBIN="$TOOL_TMP" CGO_ENABLED=0 GOTOOLCHAIN=local nice -n 10 go install "${GO_FLAGS[@]}" \
          "github.com/temporalio/ui-server/v2/cmd/server@v$TEMPORAL_UI_VERSION" >&2
        mv "$TOOL_TMP/server" "$target"
      }
      tool_build "building the Temporal Web UI server v$TEMPORAL_UI_VERSION from its Go module (one time, a few minutes)..." "$target" build
    fi
  fi
  echo "$target"; exit 0
fi
server="$TOOL_CACHE/temporal-server-$TEMPORAL_SERVER_VERSION"
sqltool="$TOOL_CACHE/temporal-sql-tool-$TEMPORAL_SERVER_VERSION"
if [[ ! -x "$server" || ! -x "$sqltool" ]]; then
  # One build at a time: the tests, `npm run tools` and `npm run dev` may ask together.
  exec 9>"$TOOL_CACHE/.temporal-server.lock"
  flock 9
  if [[ ! -x "$server" || ! -x "$sqltool" ]]; then
    # Both from one `go install` (they share most of the build).
    build() {
      GOBIN="$TOOL_TMP" CGO_ENABLED=0 GOTOOLCHAIN=local nice -n 10 go install "${GO_FLAGS[@]}" \
        "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
        "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION" >&2
      mv "$TOOL_TMP/server" "$server"
      mv "$TOOL_TMP/sql" "$sqltool"
    }
    tool_build "building Temporal server v$TEMPORAL_SERVER_VERSION and its SQL tool from their Go modules (one time, ~16 minutes on 2 cores, ~2.2 GB memory)..." "$server and $sqltool" build
  fi
fi
echo "$target"
