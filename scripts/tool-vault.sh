#!/usr/bin/env bash
# Prints the path of a Vault-compatible server binary, building it once from Go modules if needed.
# Order: $VAULT_BIN, then `bao` or `vault` on PATH, then the cached build of HashiCorp Vault v1.14.1
# (MPL-2.0; the last open-source line). OpenBao is the first choice, but the Go module proxy that
# this machine reaches refuses every version of github.com/openbao/openbao (403), see docs/development.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tool-lib.sh"
VERSION="1.14.1"
tool_print_override "VAULT_BIN=${VAULT_BIN:-}" "${VAULT_BIN:-}"
for name in bao vault; do
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; exit 0; fi
done
target="$TOOL_CACHE/vault-$VERSION"
# A throwaway wrapper module: upstream's go.mod replaces api/ and sdk/ with nested folders that
# are not in the root module's zip. The wrapper pins sdk to the pseudo-version of the v1.14.1
# release commit (bf23fe8636b0), i.e. exactly the sdk/ folder upstream builds with; no tag
# matches it (sdk/v0.9.1 lacks APIs v1.14.1 calls, sdk/v0.9.2 comes from main and panics at
# start). api/ stays at the api/v1.9.2 tag that upstream's go.mod requires (no pseudo-version of
# it is served); it is only a client library.
build() {
  cat > "$TOOL_TMP/go.mod" <<MOD
module mpcbackup.local/vaultbuild

go 1.20

require github.com/hashicorp/vault v$VERSION
MOD
  (
    cd "$TOOL_TMP"
    export GOFLAGS=-mod=mod GOTOOLCHAIN=local
    go get "github.com/hashicorp/vault@v$VERSION" github.com/hashicorp/vault/sdk@v0.9.2-0.20230721171514-bf23fe8636b0 github.com/hashicorp/vault/api@v1.9.2 >&2
    # -checklinkname=0: some of Vault 1.14's dependencies pull runtime symbols by go:linkname,
    # which Go 1.23+ refuses at link time unless told otherwise.
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -checklinkname=0" -o vault github.com/hashicorp/vault >&2
  )
  mv "$TOOL_TMP/vault" "$target"
}
if [[ ! -x "$target" ]]; then
  tool_need_go "Vault (or set VAULT_BIN)"
  tool_build "building HashiCorp Vault v$VERSION from its Go module (one time, 10-20 minutes on 2 cores)..." "$target" build
fi
echo "$target"
