# Shared by scripts/tool-*.sh (sourced, never run): each script prints the path of one tool — an
# explicit *_BIN first, then one on PATH, then a cached build of the pinned version.
#
# TOOL_CACHE and the file names the scripts build into it (<tool>-<version>) are the cache keys:
# `npm run tools` works offline as long as they stay as they are.
TOOL_CACHE="${MPC_BACKUP_CACHE:-$HOME/.cache/mpc-backup}/bin"

# tool_fail MESSAGE: says why on stderr and exits 1 (the callers read the path from stdout).
tool_fail() {
  echo "$1" >&2
  exit 1
}

# tool_print_override LABEL VALUE: a binary named explicitly wins, and must be executable; prints
# it and exits. Nothing happens when VALUE is empty.
tool_print_override() {
  [[ -n "$2" ]] || return 0
  [[ -x "$2" ]] || tool_fail "$1 is not an executable file"
  echo "$2"
  exit 0
}

# tool_need_go WHAT: every cached tool is built from Go modules.
tool_need_go() {
  command -v go >/dev/null || tool_fail "Go is needed to build $1"
}

# tool_build NOTICE BUILT COMMAND...: runs COMMAND (which builds into $TOOL_TMP, a fresh folder
# removed at exit, and moves the result into TOOL_CACHE), then says how long it took. Builds take
# minutes, so the notice comes first.
tool_build() {
  local notice="$1" built="$2" start
  shift 2
  mkdir -p "$TOOL_CACHE"
  TOOL_TMP=$(mktemp -d)
  trap 'rm -rf "$TOOL_TMP"' EXIT
  echo "$notice" >&2
  start=$(date +%s)
  "$@"
  echo "built $built in $(( $(date +%s) - start ))s" >&2
}

# tool_go_install TARGET BINARY PACKAGE [GO_FLAGS...]: the plain case of a tool_build command —
# one `go install` (static, with GO_FLAGS) whose BINARY becomes TARGET. The callers pass
# `-trimpath -ldflags "-s -w"`: no symbol table or DWARF, which the linker then does not write.
tool_go_install() {
  local target="$1" binary="$2" package="$3"
  shift 3
  GOBIN="$TOOL_TMP" CGO_ENABLED=0 go install "$@" "$package" >&2
  mv "$TOOL_TMP/$binary" "$target"
}
