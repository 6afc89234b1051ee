#!/usr/bin/env bash
# Prints the path of a local-kms binary (github.com/nsmithuk/local-kms, a local AWS KMS for tests and
# the dev stack), building it once from its Go module if needed.
# Order: $LOCAL_KMS_BIN, then `local-kms` on PATH, then the cached build of the pinned version.
# The module has no tags: VERSION is the pseudo-version the Go module proxy serves.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tool-lib.sh"
VERSION="v0.0.0-20260228092603-2a5e92d09ab6"
tool_print_override "LOCAL_KMS_BIN=${LOCAL_KMS_BIN:-}" "${LOCAL_KMS_BIN:-}"
if command -v local-kms >/dev/null 2>&1; then command -v local-kms; exit 0; fi
target="$TOOL_CACHE/local-kms-$VERSION"
if [[ ! -x "$target" ]]; then
  tool_need_go "local-kms (or set LOCAL_KMS_BIN)"
  build() { GOFLAGS=-mod=mod tool_go_install "$target" local-kms "github.com/nsmithuk/local-kms@$VERSION" -trimpath -ldflags "-s -w"; }
  tool_build "building local-kms $VERSION from its Go module (one time, a minute or two)..." "$target" build
fi
echo "$target"
