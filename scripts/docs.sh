#!/usr/bin/env bash
# The API reference and its completeness check.
#   scripts/docs.sh          build doc/index.html with LDoc (config.ld)
#   scripts/docs.sh --check  every public name has an entry (needs the Lua 5.4
#                            module: build/lua5.4-dev/ws/core.so or ws/core.so)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != --check ]; then
  # (LDoc reports each merged module on stdout: noise)
  ldoc -q . | { grep -vE '^(reading configuration|found master module|\*\*\*closing section)' || true; }
  echo "docs: doc/index.html"
  exit 0
fi

names=$(mktemp)
trap 'rm -f "$names"' EXIT
LUA_PATH="scripts/?.lua;;" ldoc -q --filter doc_names.list . >"$names"
# the newer of make's ws/core.so and scripts/test.sh's build
cpath="./?.so;;"
if [ -f build/lua5.4-dev/ws/core.so ] && { [ ! -f ws/core.so ] || [ build/lua5.4-dev/ws/core.so -nt ws/core.so ]; }; then
  cpath="build/lua5.4-dev/?.so;;"
fi
LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$cpath" \
  lua5.4 scripts/doc_check.lua "$names" README.md scripts/doc_undocumented.txt
