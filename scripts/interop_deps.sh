#!/usr/bin/env bash
# Install the peers of the interoperability specs (spec/interop/), only when
# missing:
#   node-ws      npm `ws` (+ `bufferutil`, `utf-8-validate` when they install)
#                into build/interop-node (git-ignored, owned by the tests)
#   python       Debian python3-websockets, run with /usr/bin/python3
#   lua-http     Debian lua-http (its dependencies exist for Lua 5.1: lua5.1)
#   lws          Debian libwebsockets-dev; the peer spec/interop/peers/lws_peer.c
#                is built with gcc into build/interop-lws/lws_peer
#   chromium     Debian chromium + playwright-core (scripts/browser_deps.sh)
#
#   scripts/interop_deps.sh [--check] [PEER...]   (default: every peer)
#
# Prints one line per peer, "interop_deps: <peer> ok|missing|failed ...",
# and exits non-zero when a requested peer is still missing.
set -uo pipefail
# Under `make sanitize` the specs run with libasan preloaded; the peers and
# Chromium must not inherit it.
unset LD_PRELOAD
cd "$(dirname "$0")/.."

check_only=0
if [ "${1:-}" = "--check" ]; then check_only=1; shift; fi
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(node-ws python lua-http lws chromium)

status=0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
fi

updated=0
apt_install() { # packages...
  [ "$check_only" = 1 ] && return 1
  [ "$sudo" = none ] && { echo "interop_deps: not root, cannot apt-get install $*"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    if [ "$updated" = 0 ]; then $sudo apt-get update -qq >/dev/null 2>&1; updated=1; fi
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
  fi
}

report() { # peer ok? message
  if [ "$2" = 0 ]; then echo "interop_deps: $1 ok ($3)"; else echo "interop_deps: $1 missing ($3)"; status=1; fi
}

node_ws() {
  local dir=build/interop-node
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    report node-ws 1 "node/npm missing"; return
  fi
  if [ ! -f "$dir/node_modules/ws/package.json" ] && [ "$check_only" = 0 ]; then
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"name":"lua-ws-interop","private":true}' >"$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error ws >/dev/null 2>&1
    # Optional native helpers: a failure here leaves the pure-JS paths.
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error bufferutil utf-8-validate \
      >/dev/null 2>&1 || echo "interop_deps: node-ws: bufferutil/utf-8-validate did not install (optional)"
  fi
  if [ -f "$dir/node_modules/ws/package.json" ]; then
    local v
    v=$(node -e "console.log(require('./$dir/node_modules/ws/package.json').version)" 2>/dev/null)
    report node-ws 0 "ws $v in $dir"
  else
    report node-ws 1 "npm install ws into $dir failed"
  fi
}

python_ws() {
  local check="import websockets, sys; print(websockets.__version__)"
  if ! /usr/bin/python3 -c "$check" >/dev/null 2>&1; then apt_install python3-websockets; fi
  if /usr/bin/python3 -c "$check" >/dev/null 2>&1; then
    report python 0 "websockets $(/usr/bin/python3 -c "$check")"
  else
    report python 1 "apt-get install python3-websockets"
  fi
}

lua_http() {
  local check='require "http.websocket"; require "http.server"'
  if ! lua5.1 -e "$check" >/dev/null 2>&1; then apt_install lua5.1 lua-http; fi
  if lua5.1 -e "$check" >/dev/null 2>&1; then
    report lua-http 0 "lua5.1 http.websocket"
  else
    report lua-http 1 "apt-get install lua-http lua5.1"
  fi
}

lws() {
  local out=build/interop-lws/lws_peer src=spec/interop/peers/lws_peer.c
  if [ ! -f "$src" ]; then report lws 1 "$src is not written yet"; return; fi
  if ! pkg-config --exists libwebsockets 2>/dev/null; then apt_install libwebsockets-dev pkg-config gcc; fi
  if ! pkg-config --exists libwebsockets 2>/dev/null; then
    report lws 1 "apt-get install libwebsockets-dev"; return
  fi
  if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
    if [ "$check_only" = 1 ]; then report lws 1 "$out not built"; return; fi
    mkdir -p build/interop-lws
    # shellcheck disable=SC2046
    if ! gcc -std=gnu99 -O1 -g -Wall -o "$out" "$src" $(pkg-config --cflags --libs libwebsockets) 2>build/interop-lws/build.log; then
      cat build/interop-lws/build.log
      report lws 1 "gcc $src failed"; return
    fi
  fi
  report lws 0 "libwebsockets $(pkg-config --modversion libwebsockets), $out"
}

chromium() {
  local args=()
  [ "$check_only" = 1 ] && args=(--check)
  if bash scripts/browser_deps.sh "${args[@]}" >/dev/null 2>&1; then
    report chromium 0 "$(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core in build/node"
  else
    report chromium 1 "scripts/browser_deps.sh failed"
  fi
}

for p in "${peers[@]}"; do
  case "$p" in
    node-ws) node_ws ;;
    python) python_ws ;;
    lua-http) lua_http ;;
    lws) lws ;;
    chromium) chromium ;;
    *) echo "interop_deps: unknown peer $p"; status=2 ;;
  esac
done
exit $status
