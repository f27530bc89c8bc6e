#!/usr/bin/env bash
# make bench: build the load generator, the servers and the micro-benchmarks,
# measure lua-ws against the raw TCP echo floor and its peers (3 runs each),
# and regenerate bench/RESULTS.md.  Server pinned to CPU 0, load generator to
# CPU 1.  BENCH_SECONDS (default 3) sets each timed run's length, BENCH_RUNS
# (default 3) the number of runs, BENCH_IDLE (default 10000) the idle count.
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-3}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
LUA=${LUA:-lua5.4}
OUT=build/bench
TMP=$(mktemp -d)
RES=$TMP/results.txt
: > "$RES"
COMMAND="make bench${BENCH_SECONDS:+ BENCH_SECONDS=$SECS}${BENCH_RUNS:+ BENCH_RUNS=$RUNS}${BENCH_IDLE:+ BENCH_IDLE=$IDLE}"
NOTES=$TMP/notes.txt
: > "$NOTES"
note() { echo "bench: $*"; echo "$*" >> "$NOTES"; }

if [ "$(nproc)" -ge 2 ]; then SCPU=0; LCPU=1; else SCPU=0; LCPU=0; note "only one CPU: server and load generator share it"; fi

# --- build -----------------------------------------------------------------
bash scripts/deps.sh >/dev/null 2>&1 || true
make -s LUA="$LUA" >/dev/null || { echo "bench: building lua-ws failed"; exit 1; }
mkdir -p "$OUT"
gcc -O2 -Wall -Wextra -o "$OUT/loadgen" bench/loadgen.c || exit 1
gcc -O2 -Wall -Wextra -o "$OUT/tcp_echo" bench/tcp_echo.c || exit 1
gcc -O2 -std=gnu99 -Wall -Wextra -Icsrc -o "$OUT/micro" bench/micro.c csrc/mask.c csrc/utf8.c csrc/frame.c || exit 1

# --- peers (installed when missing; skipped with a note when they cannot be) --
HAVE_NODE=0
if command -v node >/dev/null; then
  if [ ! -d build/bench-node/node_modules/ws ]; then
    mkdir -p build/bench-node
    (cd build/bench-node && timeout 180 npm install --no-audit --no-fund ws bufferutil utf-8-validate >/dev/null 2>&1)
  fi
  [ -d build/bench-node/node_modules/ws ] && HAVE_NODE=1
fi
[ $HAVE_NODE = 1 ] || note "Node ws not measured: node or npm install of ws failed"
PY=/usr/bin/python3
if ! $PY -c 'import websockets' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-websockets >/dev/null 2>&1
fi
HAVE_PY=0; $PY -c 'import websockets' 2>/dev/null && HAVE_PY=1
[ $HAVE_PY = 1 ] || note "Python websockets not measured: python3-websockets missing"

export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='./?.so;;'
export NODE_PATH=build/bench-node/node_modules

# name | raw flag | command (the port is appended)
SERVERS=("tcp_echo|--raw|$OUT/tcp_echo"
         "luaws_callback||$LUA bench/servers/luaws_callback.lua"
         "luaws_coroutine||$LUA bench/servers/luaws_coroutine.lua")
[ $HAVE_NODE = 1 ] && SERVERS+=("node_ws||node bench/servers/node_ws.js")
[ $HAVE_PY = 1 ] && SERVERS+=("python_websockets||$PY bench/servers/python_websockets.py")

SPID=
start_server() { # name port cmd...   (sets SPID)
  local name=$1 port=$2; shift 2
  taskset -c $SCPU "$@" "$port" > "$TMP/$name.log" 2>&1 &
  SPID=$!
  for _ in $(seq 100); do
    grep -q listening "$TMP/$name.log" 2>/dev/null && return 0
    kill -0 $SPID 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
declare -A PIDS PORTS RAW CMDS
stop_pid() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; [ -n "$SPID" ] && stop_pid "$SPID"; rm -rf "$TMP"; }
trap cleanup EXIT

run() { # name test run port args...
  local name=$1 test=$2 r=$3 port=$4 pid=$5; shift 5
  local line
  # shellcheck disable=SC2086
  if line=$(taskset -c $LCPU "$OUT/loadgen" "$@" --port "$port" --server-pid "$pid" ${RAW[$name]} 2>"$TMP/lg.err"); then
    echo "$name $test $r $line" >> "$RES"
  else
    echo "$name $test $r FAIL $(tr '\n' ' ' < "$TMP/lg.err")" >> "$RES"
    note "$name $test run $r failed: $(tr '\n' ' ' < "$TMP/lg.err")"
  fi
  echo "  $name $test #$r: $(tail -1 "$RES" | cut -d' ' -f4-)"
}

# Every server runs at once (idle ones cost nothing) and the runs go round by
# round over all of them, so a slow spell of a shared host hits every server
# of that round alike; the report's ratios pair the runs of the same round.
NAMES=()
port=19300
for s in "${SERVERS[@]}"; do
  IFS='|' read -r name raw cmd <<< "$s"
  port=$((port + 1))
  RAW[$name]=$raw; PORTS[$name]=$port; CMDS[$name]=$cmd
  # shellcheck disable=SC2086
  if start_server "$name" $port $cmd; then
    PIDS[$name]=$SPID; NAMES+=("$name")
  else
    note "$name did not start: $(tail -3 "$TMP/$name.log" | tr '\n' ' ')"; stop_pid "$SPID"
  fi
  SPID=
done
for r in $(seq "$RUNS"); do
  echo "bench: round $r"
  for name in "${NAMES[@]}"; do
    p=${PORTS[$name]} pid=${PIDS[$name]}
    run "$name" echo32 "$r" "$p" "$pid" echo -c 100 -s 32 -d "$SECS"
    run "$name" tput64k "$r" "$p" "$pid" throughput -s 65536 -d "$SECS"
    run "$name" tput1m "$r" "$p" "$pid" throughput -s 1048576 -d "$SECS"
    run "$name" handshake "$r" "$p" "$pid" handshake -c 10 -d "$SECS"
  done
done
for name in "${NAMES[@]}"; do stop_pid "${PIDS[$name]}"; unset "PIDS[$name]"; done
for r in $(seq "$RUNS"); do   # idle: a fresh server process for each run
  for name in "${NAMES[@]}"; do
    # shellcheck disable=SC2086
    start_server "$name" "${PORTS[$name]}" ${CMDS[$name]} || { note "$name did not restart"; continue; }
    sleep 0.5
    run "$name" idle "$r" "${PORTS[$name]}" "$SPID" idle -n "$IDLE"
    stop_pid "$SPID"; SPID=
  done
done

echo "bench: micro-benchmarks"
for r in $(seq "$RUNS"); do
  echo "micro micro $r $(taskset -c $LCPU "$OUT/micro" | tr '\n' ' ')" >> "$RES"
done

cp "$RES" build/bench/last_results.txt
$PY bench/report.py "$RES" "$NOTES" "$COMMAND" "$LUA" "$SCPU" "$LCPU" > bench/RESULTS.md && echo "bench: wrote bench/RESULTS.md"
