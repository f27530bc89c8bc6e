#!/usr/bin/env bash
# make bench: build the load generator, the servers and the micro-benchmarks,
# measure lua-ws against the raw TCP echo floor and its peers (3 runs each),
# and regenerate bench/RESULTS.md.  Server pinned to CPU 0, load generator to
# CPU 1.  BENCH_SECONDS (default 3) sets each timed run's length, BENCH_RUNS
# (default 3) the number of runs, BENCH_IDLE (default 10000) the idle count,
# BENCH_TLS_IDLE (default 2000, at most BENCH_IDLE) the idle count over TLS
# (10000 TLS connections take about 20 s per run for Node alone).
# BENCH_TPUT_RUNS (default twice BENCH_RUNS) is the number of rounds of the
# throughput tests for raw TCP and the lua-ws callback server on Lua 5.4 and
# LuaJIT: their ratios sit near 1 and one 3-second run swings by 10 % or more,
# so the rounds after the first BENCH_RUNS run those tests alone.
# BENCH_ONLY (opt-in, for trying a change to the harness): a space-separated
# list of the server names below (e.g. "tcp_echo luaws_callback"); the others
# are not started and show as not measured.  BENCH_PORT (default 19300): the
# servers listen on the ports above it.
#
# Order: within a round each test goes over every server back to back, so a
# ratio pairs runs seconds apart (a round over every test takes minutes, and
# a shared host drifts within that); even rounds take the servers in reverse
# order, so neither side of a ratio always runs first.
#
# Large messages: 4 MiB and 8 MiB on 4 connections, 1 in flight each, for raw
# TCP, lua-ws (callback on Lua 5.4 and LuaJIT, coroutine), libwebsockets and
# Node ws; Python websockets and lua-http are left out for time (lua-http
# echoes two or three 8 MiB messages in a run).
#
# permessage-deflate: 4 KiB JSON-like text echoed by lua-ws, Node ws, Python
# websockets and libwebsockets with compression on, and by the same servers
# without it.
#
# Peers: Node ws and Python websockets (plain and, for Node, wss://),
# libwebsockets (Debian libwebsockets-dev, bench/servers/lws_echo.c) and
# lua-http (Debian lua-http on lua5.1).  Each is installed when missing and
# skipped with a note in RESULTS.md when it cannot be.
#
# LuaJIT: the same callback server (bench/servers/luaws_callback.lua) on
# `luajit` (installed by scripts/deps.sh), ws/core.so built for it into
# build/luajit-bench/, runs every plain test and permessage-deflate beside
# Lua 5.4.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

SECS=${BENCH_SECONDS:-3}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
TLS_IDLE=${BENCH_TLS_IDLE:-$((IDLE < 2000 ? IDLE : 2000))}
TPUT_RUNS=${BENCH_TPUT_RUNS:-$((2 * RUNS))}
ONLY=${BENCH_ONLY:-}
LUA=${LUA:-lua5.4}
OUT=build/bench
TMP=$(mktemp -d)
RES=$TMP/results.txt
: > "$RES"
COMMAND="make bench${BENCH_SECONDS:+ BENCH_SECONDS=$SECS}${BENCH_RUNS:+ BENCH_RUNS=$RUNS}${BENCH_IDLE:+ BENCH_IDLE=$IDLE}${BENCH_TLS_IDLE:+ BENCH_TLS_IDLE=$TLS_IDLE}${BENCH_TPUT_RUNS:+ BENCH_TPUT_RUNS=$TPUT_RUNS}${ONLY:+ BENCH_ONLY=\"$ONLY\"}"
NOTES=$TMP/notes.txt
: > "$NOTES"
note() { echo "bench: $*"; echo "$*" >> "$NOTES"; }
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)

if [ "$(nproc)" -ge 2 ]; then SCPU=0; LCPU=1; else SCPU=0; LCPU=0; note "only one CPU: server and load generator share it"; fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
fi
apt_install() { # packages...  (as scripts/interop_deps.sh: update only when the first try fails)
  [ "$sudo" = none ] && return 1
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  $sudo apt-get update -qq >/dev/null 2>&1
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# --- build -----------------------------------------------------------------
bash scripts/deps.sh >/dev/null 2>&1 || true
make -s LUA="$LUA" >/dev/null || { echo "bench: building lua-ws failed"; exit 1; }
mkdir -p "$OUT"
# the same module for LuaJIT, in its own directory (as scripts/test.sh does
# for the other Luas); started through a wrapper that points LUA_CPATH there
HAVE_JIT=0
JIT_OUT=build/luajit-bench
if command -v luajit >/dev/null &&
   make -s LUA=luajit OUT="$JIT_OUT/ws/core.so" >"$TMP/jit_build.log" 2>&1; then
  printf '#!/bin/sh\nLUA_CPATH="%s/?.so;;" exec luajit "$@"\n' "$PWD/$JIT_OUT" > "$TMP/luajit-ws"
  chmod +x "$TMP/luajit-ws"
  HAVE_JIT=1
else
  note "LuaJIT not measured: luajit missing or building ws/core.so for it failed ($(tail -2 "$TMP/jit_build.log" 2>/dev/null | tr '\n' ' '))"
fi
gcc -O2 -Wall -Wextra -o "$OUT/loadgen" bench/loadgen.c -lssl -lcrypto -lz || exit 1
gcc -O2 -Wall -Wextra -o "$OUT/tcp_echo" bench/tcp_echo.c || exit 1
gcc -O2 -std=gnu99 -Wall -Wextra -Icsrc/core -o "$OUT/micro" bench/micro.c csrc/core/mask.c csrc/core/utf8.c csrc/core/frame.c || exit 1
# the whole session: the C core without the Lua bindings, as an archive so
# only what session.c needs is linked
HAVE_SESSION=0
rm -rf "$OUT/core" && mkdir -p "$OUT/core"
core_ok=1
for f in csrc/core/*.c csrc/io/*.c; do
  gcc -std=c99 -D_POSIX_C_SOURCE=200809L -Icsrc -O2 -Wall -Wextra -c -o "$OUT/core/$(basename "$f" .c).o" "$f" \
    2>>"$OUT/core/build.log" || core_ok=0
done
if [ $core_ok = 1 ] && ar rcs "$OUT/core/libwscore.a" "$OUT"/core/*.o &&
   gcc -std=c99 -O2 -Wall -Wextra -Icsrc/core -o "$OUT/session_feed" bench/session_feed.c "$OUT/core/libwscore.a" \
     -lssl -lcrypto -lz -pthread 2>>"$OUT/core/build.log"; then
  HAVE_SESSION=1
else
  note "session feed not measured: building bench/session_feed.c against csrc/ failed ($(tail -2 "$OUT/core/build.log" | tr '\n' ' '))"
fi

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
if ! $PY -c 'import websockets' 2>/dev/null; then apt_install python3-websockets; fi
HAVE_PY=0; $PY -c 'import websockets' 2>/dev/null && HAVE_PY=1
[ $HAVE_PY = 1 ] || note "Python websockets not measured: python3-websockets missing"
HAVE_LWS=0
if ! pkg-config --exists libwebsockets 2>/dev/null; then apt_install libwebsockets-dev pkg-config; fi
if pkg-config --exists libwebsockets 2>/dev/null; then
  # shellcheck disable=SC2046
  if gcc -O2 -Wall -Wextra -o "$OUT/lws_echo" bench/servers/lws_echo.c \
       $(pkg-config --cflags --libs libwebsockets) 2>"$OUT/lws_build.log"; then
    HAVE_LWS=1
  else
    note "libwebsockets not measured: gcc bench/servers/lws_echo.c failed ($(head -3 "$OUT/lws_build.log" | tr '\n' ' '))"
  fi
else
  note "libwebsockets not measured: apt-get install libwebsockets-dev failed"
fi
HAVE_LUAHTTP=0
luahttp_check='require "http.websocket"; require "http.server"'
if ! lua5.1 -e "$luahttp_check" >/dev/null 2>&1; then apt_install lua5.1 lua-http; fi
lua5.1 -e "$luahttp_check" >/dev/null 2>&1 && HAVE_LUAHTTP=1
[ $HAVE_LUAHTTP = 1 ] || note "lua-http not measured: apt-get install lua5.1 lua-http failed"

# wss:// servers share a self-signed ECDSA P-256 certificate made here
HAVE_CERT=0
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
     -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -subj /CN=localhost \
     -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1; then
  HAVE_CERT=1
else
  note "TLS not measured: openssl req could not make a certificate"
fi

export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='./?.so;;'
export NODE_PATH=build/bench-node/node_modules

# name | loadgen flags | tests | command (the port is appended)
PLAIN="echo32 echo1k tput64k tput1m tput64k4 tput1m4 handshake idle"
LARGE="tput4m4 tput8m4"
TLS="echo32 handshake idle"
SERVERS=("tcp_echo|--raw|$PLAIN $LARGE|$OUT/tcp_echo"
         "luaws_callback||$PLAIN $LARGE json4k|$LUA bench/servers/luaws_callback.lua"
         "luaws_coroutine||$PLAIN $LARGE|$LUA bench/servers/luaws_coroutine.lua"
         "luaws_deflate|--deflate|deflate4k|$LUA bench/servers/luaws_callback.lua --deflate"
         "luaws_deflate_small|--deflate|deflate4k|$LUA bench/servers/luaws_callback.lua --deflate-small")
[ $HAVE_JIT = 1 ] && SERVERS+=("luaws_callback_jit||$PLAIN $LARGE json4k|$TMP/luajit-ws bench/servers/luaws_callback.lua"
                               "luaws_deflate_jit|--deflate|deflate4k|$TMP/luajit-ws bench/servers/luaws_callback.lua --deflate")
[ $HAVE_LWS = 1 ] && SERVERS+=("lws||$PLAIN $LARGE json4k|$OUT/lws_echo" "lws_deflate|--deflate|deflate4k|$OUT/lws_echo --deflate")
[ $HAVE_NODE = 1 ] && SERVERS+=("node_ws||$PLAIN $LARGE json4k|node bench/servers/node_ws.js"
                                "node_ws_deflate|--deflate|deflate4k|node bench/servers/node_ws.js --deflate")
[ $HAVE_PY = 1 ] && SERVERS+=("python_websockets||$PLAIN json4k|$PY bench/servers/python_websockets.py"
                              "python_websockets_deflate|--deflate|deflate4k|$PY bench/servers/python_websockets.py --deflate")
[ $HAVE_LUAHTTP = 1 ] && SERVERS+=("lua_http||$PLAIN|lua5.1 bench/servers/lua_http.lua")
if [ $HAVE_CERT = 1 ]; then
  SERVERS+=("luaws_tls|--tls|$TLS|$LUA bench/servers/luaws_tls.lua $TMP/cert.pem $TMP/key.pem")
  [ $HAVE_NODE = 1 ] && SERVERS+=("node_wss|--tls|$TLS|node bench/servers/node_wss.js $TMP/cert.pem $TMP/key.pem")
fi

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
declare -A PIDS PORTS FLAGS CMDS TESTS
stop_pid() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; [ -n "$SPID" ] && stop_pid "$SPID"; rm -rf "$TMP"; }
trap cleanup EXIT

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
settle() { # pid: wait (at most 10 s) until the server stops using CPU, so work
           # left over from a run (a slow server still echoing 1 MiB messages
           # the load generator no longer reads) does not land in the next one
  local a b
  a=$(cpu_ticks "$1")
  for _ in $(seq 100); do
    sleep 0.1
    b=$(cpu_ticks "$1")
    [ -z "$b" ] || [ "$a" = "$b" ] && return
    a=$b
  done
}

run() { # name test run port pid args...
  local name=$1 test=$2 r=$3 port=$4 pid=$5; shift 5
  local line limit=$((SECS + 90))
  [ "$test" = idle ] && limit=600
  # shellcheck disable=SC2086
  if line=$(timeout -k 5 $limit taskset -c $LCPU "$OUT/loadgen" "$@" --port "$port" --server-pid "$pid" \
              ${FLAGS[$name]} 2>"$TMP/lg.err"); then
    echo "$name $test $r $line" >> "$RES"
  else
    local why
    why=$(tr '\n' ' ' < "$TMP/lg.err")
    [ -z "$why" ] && why="no answer within ${limit} s (timeout)"
    local slog
    slog=$(grep -v '^listening' "$TMP/$name.log" 2>/dev/null | tail -2 | tr '\n' ' ')
    [ -n "$slog" ] && why="$why; the server's log: $slog"
    echo "$name $test $r FAIL $why" >> "$RES"
    note "$name $test run $r failed: $why"
  fi
  echo "  $name $test #$r: $(tail -1 "$RES" | cut -d' ' -f4-)"
  settle "$pid"
}

has_test() { [[ " ${TESTS[$1]} " == *" $2 "* ]]; }

# the load generator's arguments for a timed test (its length appended)
test_args() {
  case $1 in
    echo32) echo "echo -c 100 -s 32" ;;
    echo1k) echo "echo -c 100 -s 1024" ;;
    tput64k) echo "throughput -s 65536" ;;
    tput1m) echo "throughput -s 1048576" ;;
    # 4 connections, 1 message in flight each: the server's per-message cost
    # with the load spread over connections (large-message buffers per connection)
    tput64k4) echo "throughput -c 4 -w 1 -s 65536" ;;
    tput1m4) echo "throughput -c 4 -w 1 -s 1048576" ;;
    tput4m4) echo "throughput -c 4 -w 1 -s 4194304" ;;
    tput8m4) echo "throughput -c 4 -w 1 -s 8388608" ;;
    handshake) echo "handshake -c 10" ;;
    json4k) echo "echo -c 100 -s 4096 --json" ;;
    deflate4k) echo "echo -c 100 -s 4096" ;;
  esac
}
TIMED="echo32 echo1k tput64k tput1m tput64k4 tput1m4 tput4m4 tput8m4 handshake json4k deflate4k"
TPUT="tput64k tput1m tput64k4 tput1m4 tput4m4 tput8m4"
TPUT_SERVERS="tcp_echo luaws_callback luaws_callback_jit"   # the extra rounds
round() { # round tests servers...
  local r=$1 tests=$2 t name i order=("${@:3}")
  if [ $((r % 2)) = 0 ]; then  # even rounds go the other way round
    order=(); for ((i = $#; i > 2; i--)); do order+=("${!i}"); done
  fi
  for t in $tests; do
    for name in "${order[@]}"; do
      has_test "$name" "$t" || continue
      # shellcheck disable=SC2046
      run "$name" "$t" "$r" "${PORTS[$name]}" "${PIDS[$name]}" $(test_args "$t") -d "$SECS"
    done
  done
}

# Every server runs at once (idle ones cost nothing) and the runs go round by
# round over all of them, so a slow spell of a shared host hits every server
# of that round alike; the report's ratios pair the runs of the same round.
NAMES=()
port=${BENCH_PORT:-19300}
for s in "${SERVERS[@]}"; do
  IFS='|' read -r name flags tests cmd <<< "$s"
  port=$((port + 1))
  [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]] && continue
  FLAGS[$name]=$flags; PORTS[$name]=$port; CMDS[$name]=$cmd; TESTS[$name]=$tests
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
  round "$r" "$TIMED" "${NAMES[@]}"
done
EXTRA=()
for name in $TPUT_SERVERS; do [ -n "${PIDS[$name]:-}" ] && EXTRA+=("$name"); done
if [ ${#EXTRA[@]} -gt 0 ]; then
  for r in $(seq $((RUNS + 1)) "$TPUT_RUNS"); do
    echo "bench: round $r (throughput of ${EXTRA[*]})"
    round "$r" "$TPUT" "${EXTRA[@]}"
  done
fi
for name in "${NAMES[@]}"; do stop_pid "${PIDS[$name]}"; unset "PIDS[$name]"; done
for r in $(seq "$RUNS"); do   # idle: a fresh server process for each run
  for name in "${NAMES[@]}"; do
    has_test "$name" idle || continue
    n=$IDLE; [ "${FLAGS[$name]}" = --tls ] && n=$TLS_IDLE
    # shellcheck disable=SC2086
    start_server "$name" "${PORTS[$name]}" ${CMDS[$name]} || { note "$name did not restart"; continue; }
    sleep 0.5
    run "$name" idle "$r" "${PORTS[$name]}" "$SPID" idle -n "$n"
    stop_pid "$SPID"; SPID=
  done
done

echo "bench: micro-benchmarks"
for r in $(seq "$RUNS"); do
  echo "micro micro $r $(taskset -c $LCPU "$OUT/micro" | tr '\n' ' ')" >> "$RES"
  if [ $HAVE_SESSION = 1 ]; then
    if line=$(timeout 120 taskset -c $LCPU "$OUT/session_feed" 2>&1); then
      echo "micro session $r $(echo "$line" | tr '\n' ' ')" >> "$RES"
    else
      echo "micro session $r FAIL $(echo "$line" | tr '\n' ' ')" >> "$RES"
      note "session feed run $r failed: $(echo "$line" | tr '\n' ' ')"
    fi
  fi
done

T_END=$(date +%s)
echo "total wall 1 seconds=$((T_END - T_START)) load_start=$LOAD_START load_end=$(cut -d' ' -f1 /proc/loadavg)" >> "$RES"
cp "$RES" build/bench/last_results.txt
$PY bench/report.py "$RES" "$NOTES" "$COMMAND" "$LUA" "$SCPU" "$LCPU" > bench/RESULTS.md && echo "bench: wrote bench/RESULTS.md"
echo "bench: took $((T_END - T_START)) s"
