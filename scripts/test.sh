#!/usr/bin/env bash
# Build lua-ws and run luacheck plus the busted specs (and, in the full run,
# the API reference check: scripts/docs.sh --check).
#   scripts/test.sh              every supported Lua, dev build
#   scripts/test.sh --sanitize   Lua 5.4 against an ASan+UBSan build
#   scripts/test.sh --valgrind   Lua 5.4 under valgrind with leak checking
#   scripts/test.sh --poll       Lua 5.4 on the poll() loop (the one used off
#                                Linux): the loop, networked and reconnect specs
# Ends with one line "N passed, N failed" summed over the runs.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
luas=(lua5.1 lua5.3 lua5.4 luajit)
variant=dev
runner=()
specs=()
case "$mode" in
  "") ;;
  --sanitize) luas=(lua5.4); variant=sanitize ;;
  --valgrind) luas=(lua5.4); variant=valgrind
    # Peers, browsers, floods and the soak only add minutes (and timing
    # noise) here: the C paths they drive are covered by the other specs,
    # and make sanitize runs them all.  The CPU and latency bounds of the
    # busy-loop and fairness specs mean nothing under valgrind.
    mapfile -t specs < <(find spec -name '*_spec.lua' ! -path 'spec/interop/*' \
      ! -name 'chat_browser_spec.lua' ! -name 'soak_spec.lua' ! -name 'hostile_spec.lua' \
      ! -name 'net_busy_spec.lua' ! -name 'net_fairness_spec.lua' | sort)
    runner=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite --suppressions=scripts/valgrind.supp) ;;
  --poll) luas=(lua5.4); variant=poll
    mapfile -t specs < <(ls spec/loop_spec.lua spec/net_*_spec.lua spec/reconnect_spec.lua) ;;
  *) echo "usage: $0 [--sanitize|--valgrind|--poll]" >&2; exit 2 ;;
esac

jobs=$(nproc 2>/dev/null || echo 2)
[ ${#specs[@]} -eq 0 ] && specs=(spec)
passed=0 failed=0 status=0

if [ -z "$mode" ]; then
  if ! bash scripts/lint.sh; then
    echo "luacheck: FAILED"
    failed=$((failed + 1)); status=1
  fi
fi

for lua in "${luas[@]}"; do
  out="build/$lua-$variant/ws/core.so"
  if ! make -s -j"$jobs" LUA="$lua" VARIANT="$variant" OUT="$out" >/dev/null; then
    echo "build for $lua ($variant): FAILED"
    failed=$((failed + 1)); status=1; continue
  fi
  env=(LUA_PATH="./?.lua;lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/$lua-$variant/?.so;;"
       WS_TEST_VARIANT="$variant")
  if [ "$variant" = sanitize ]; then
    env+=(LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
          ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1)
  fi
  log=$(mktemp)
  echo "== busted on $lua ($variant)"
  env "${env[@]}" "${runner[@]}" "$lua" /usr/bin/busted -o utfTerminal "${specs[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  s=$(grep -aoE '[0-9]+ success' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  f=$(grep -aoE '[0-9]+ failure' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  e=$(grep -aoE '[0-9]+ error' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  rm -f "$log"
  passed=$((passed + s)); failed=$((failed + f + e))
  if [ "$rc" -ne 0 ]; then
    status=1
    [ $((f + e)) -eq 0 ] && failed=$((failed + 1)) # crash or valgrind error
  fi
done

# Every public name has an entry in the API reference (needs the 5.4 build).
if [ -z "$mode" ] && ! bash scripts/docs.sh --check; then
  echo "docs: FAILED"
  failed=$((failed + 1)); status=1
fi

echo "$passed passed, $failed failed"
exit $status
