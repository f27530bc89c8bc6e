#!/usr/bin/env bash
# Line and branch coverage of csrc/ from the Lua 5.4 specs: a --coverage
# build of its own (build/lua5.4-coverage), the specs against it, then
# gcovr's per-file tables (lines, then branches) with the uncovered lines.
#   scripts/coverage.sh [spec files...]   (default: spec/)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v gcovr >/dev/null; then
  echo "coverage: installing gcovr"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends gcovr >/dev/null
fi

build=build/lua5.4-coverage
make -s -j"$(nproc 2>/dev/null || echo 2)" LUA=lua5.4 VARIANT=coverage OUT="$build/ws/core.so" >/dev/null
find "$build" -name '*.gcda' -delete

specs=("$@")
[ ${#specs[@]} -eq 0 ] && specs=(spec)
status=0
LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$build/?.so;;" \
  lua5.4 /usr/bin/busted -o TAP "${specs[@]}" >"$build/busted.log" 2>&1 || status=$?
grep -aE '^(not ok|# )' "$build/busted.log" | head -40 || true
echo "coverage: busted exited with $status ($(grep -ac '^ok' "$build/busted.log") ok," \
     "$(grep -ac '^not ok' "$build/busted.log") not ok; log in $build/busted.log)"

gcovr_args=(-r . --filter 'csrc/(core|io|lua)/' --exclude-unreachable-branches "$build/obj")
echo "== lines"
gcovr "${gcovr_args[@]}"
echo "== branches"
gcovr "${gcovr_args[@]}" --branches
exit $status
