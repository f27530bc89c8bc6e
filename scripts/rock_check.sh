#!/usr/bin/env bash
# Prove the rockspec installs a working module: luarocks make into a
# throw-away tree, then a plain Lua with that tree on its paths uses it.
set -euo pipefail
cd "$(dirname "$0")/.."

listed=$(grep -oE '"csrc/[a-z]+/[a-z_0-9]+\.c"' rockspec/lua-ws-scm-1.rockspec | tr -d '"' | sort)
present=$(ls csrc/*/*.c | sort)
if [ "$listed" != "$present" ]; then
  echo "rockspec: C sources differ from csrc/ (update with scripts/gen_rockspec.sh):"
  diff <(echo "$listed") <(echo "$present") || true
  exit 1
fi

for f in lua/ws/*.lua; do
  grep -q "\"$f\"" rockspec/lua-ws-scm-1.rockspec ||
    { echo "rockspec: $f is not listed in build.modules"; exit 1; }
done

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for v in 5.1 5.4; do
  luarocks --lua-version "$v" make --tree "$tree/$v" rockspec/lua-ws-scm-1.rockspec >"$tree/log" 2>&1 ||
    { cat "$tree/log"; echo "rockspec: luarocks make failed for Lua $v"; exit 1; }
  (cd "$tree" && LUA_PATH="$tree/$v/share/lua/$v/?.lua;$tree/$v/share/lua/$v/?/init.lua" \
     LUA_CPATH="$tree/$v/lib/lua/$v/?.so" "lua$v" -e '
    local ws = require "ws"
    local c = ws.session{ role = "client", handshake = false }
    local s = ws.session{ role = "server", handshake = false }
    assert(c:send("rock"))
    s:feed(c:output())
    local kind, data = s:next_event()
    assert(kind == "message" and data == "rock", "message did not arrive")
    assert(type(ws.reconnecting) == "function" and require("ws.reconnect"))
    print("rockspec: Lua '"$v"' installed module works")')
done
