#!/usr/bin/env bash
# `npm run tools`: makes sure every tool binary the stack runs is there — each tool-*.sh script
# prints one path and builds or installs its tool once if the cache lacks it. On a fresh machine
# the builds run side by side: a Go build alternates between waiting on the module proxy, compiling
# on every core and linking on one, so together they keep both cores busy where one after another
# left them idle (measured in docs/development.md, "A fresh machine"). Go's build and module
# caches are safe to share between concurrent builds. Each build's notices go to stderr prefixed
# with its tool; the exit status is 1 if any failed, naming them.
set -uo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
tools=(
  "temporal-cli:tool-temporal.sh"
  "vault:tool-vault.sh"
  "temporal-server:tool-temporal-server.sh server"
  "temporal-ui:tool-temporal-server.sh ui"
  "local-kms:tool-local-kms.sh"
  "chromium:tool-chromium.sh"
)
pids=()
for entry in "${tools[@]}"; do
  name="${entry%%:*}"
  read -r -a command <<<"${entry#*:}"
  # stdout (the path) is not needed here; stderr (the notices) is labelled line by line.
  ( bash "$here/${command[0]}" "${command[@]:1}" 2>&1 >/dev/null | sed -u "s/^/[$name] /" >&2; exit "${PIPESTATUS[0]}" ) &
  pids+=("$!")
done
failed=()
for i in "${!tools[@]}"; do
  wait "${pids[$i]}" || failed+=("${tools[$i]%%:*}")
done
if ((${#failed[@]})); then
  echo "npm run tools: could not obtain ${failed[*]} (the lines above, prefixed with each name, say why)" >&2
  exit 1
fi
