#!/usr/bin/env bash
# Prints the path of a local-kms binary (github.com/nsmithuk/local-kms, a local AWS KMS for tests and
# the dev stack), building it once from its Go module if needed.
# Order: $LOCAL_KMS_BIN, then `local-kms` on PATH, then the cached build of the pinned version.
# The module has no tags: VERSION is the pseudo-version the Go module proxy serves.
set -euo pipefail
VERSION="v0.0.0-20260228092603-2a5e92d09ab6"
CACHE="${MPC_BACKUP_CACHE:-$HOME/.cache/mpc-backup}/bin"
if [[ -n "${LOCAL_KMS_BIN:-}" ]]; then
  [[ -x "$LOCAL_KMS_BIN" ]] || { echo "LOCAL_KMS_BIN=$LOCAL_KMS_BIN is not an executable file" >&2; exit 1; }
  echo "$LOCAL_KMS_BIN"; exit 0
fi
if command -v local-kms >/dev/null 2>&1; then command -v local-kms; exit 0; fi
target="$CACHE/local-kms-$VERSION"
if [[ ! -x "$target" ]]; then
  command -v go >/dev/null || { echo "Go is needed to build local-kms (or set LOCAL_KMS_BIN)" >&2; exit 1; }
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "building local-kms $VERSION from its Go module (one time, a minute or two)..." >&2
  start=$(date +%s)
  GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "github.com/nsmithuk/local-kms@$VERSION" >&2
  mv "$tmp/local-kms" "$target"
  echo "built $target in $(( $(date +%s) - start ))s" >&2
fi
echo "$target"
