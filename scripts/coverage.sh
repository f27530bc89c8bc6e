#!/usr/bin/env bash
# Line and branch coverage of csrc/ from the Lua 5.4 specs: a --coverage
# build of its own (build/lua5.4-coverage), the specs against it, the loop
# and networked specs against a second one on the poll() loop
# (build/lua5.4-coverage-poll, as scripts/test.sh --poll), then gcovr's
# per-file tables (lines, then branches) over both, with the uncovered lines.
#   scripts/coverage.sh [spec files...]   (default: spec/; no poll run)
# COVERAGE_KEEP=1 keeps the counters of earlier runs (of the same build), so
# specs can be added to a whole run one file at a time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v gcovr >/dev/null; then
  echo "coverage: installing gcovr"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends gcovr >/dev/null
fi

jobs=$(nproc 2>/dev/null || echo 2)
status=0
# run VARIANT SPECS...: build, clear the counters, run busted (TAP log kept)
run() {
  local variant=$1 build=build/lua5.4-$1
  shift
  make -s -j"$jobs" LUA=lua5.4 VARIANT="$variant" OUT="$build/ws/core.so" >/dev/null
  [ "${COVERAGE_KEEP:-0}" = 1 ] || find "$build" -name '*.gcda' -delete
  local rc=0
  LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$build/?.so;;" \
    lua5.4 /usr/bin/busted -o TAP "$@" >"$build/busted.log" 2>&1 || rc=$?
  grep -aE '^not ok' "$build/busted.log" | head -40 || true
  echo "coverage: $variant: busted exited with $rc ($(grep -ac '^ok' "$build/busted.log") ok," \
       "$(grep -ac '^not ok' "$build/busted.log") not ok; log in $build/busted.log)"
  [ "$rc" -eq 0 ] || status=$rc
}

if [ $# -gt 0 ]; then
  run coverage "$@"
else
  run coverage spec
  mapfile -t poll_specs < <(ls spec/loop_spec.lua spec/loop_edges_spec.lua spec/net_*_spec.lua spec/reconnect_spec.lua)
  run coverage-poll "${poll_specs[@]}"
fi

report() { # build dir, filter
  gcovr -r . --filter "$2" --exclude-unreachable-branches "$1"
  gcovr -r . --filter "$2" --exclude-unreachable-branches "$1" --branches
}
echo "== csrc/: lines, then branches"
report build/lua5.4-coverage/obj 'csrc/(core|io|lua)/'
if [ $# -eq 0 ]; then
  # gcovr 5 cannot merge the two builds (loop.c defines functions per
  # backend), so the poll() half of the loop is reported on its own.
  echo "== csrc/io/loop.c built with the poll() loop: lines, then branches"
  report build/lua5.4-coverage-poll/obj 'csrc/io/loop\.c'
fi
exit $status
