#!/usr/bin/env bash
# Check the rockspecs: their lists match the tree (scripts/gen_rockspec.sh),
# `luarocks lint` passes on each, and each installs a working module with
# `luarocks make` into a throw-away tree (scm-1 for Lua 5.1, the release
# for Lua 5.4), used from a plain Lua with that tree on its paths.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/gen_rockspec.sh --check

for f in rockspec/*.rockspec; do
  luarocks lint "$f" || { echo "rockspec: luarocks lint failed on $f"; exit 1; }
done
echo "rockspec: lists match the tree, luarocks lint clean"

release=$(ls rockspec/lua-ws-[0-9]*.rockspec | sort -V | tail -1)
version=$(basename "$release" .rockspec); version=${version#lua-ws-}; version=${version%-*}

# luarocks make builds in the source folder (ws/core.so, csrc/*/*.o):
# build in a copy so the checkout's dev build is left alone.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/src"
git ls-files -co --exclude-standard | while IFS= read -r f; do [ -e "$f" ] && printf "%s\0" "$f"; done |
  xargs -0 cp --parents -t "$tree/src"
for pair in "5.1 rockspec/lua-ws-scm-1.rockspec" "5.4 $release"; do
  set -- $pair
  v=$1 spec=$2
  rm -rf "$tree/src/ws" && find "$tree/src/csrc" -name '*.o' -delete
  (cd "$tree/src" && luarocks --lua-version "$v" make --tree "$tree/$v" "$spec") >"$tree/log" 2>&1 ||
    { cat "$tree/log"; echo "rockspec: luarocks make $spec failed for Lua $v"; exit 1; }
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
    assert(not pcall(require, "ws.testing"), "the test module is installed")
    assert(require("ws.core").pipe == nil, "test helpers in ws.core")
    if "'"$spec"'" ~= "rockspec/lua-ws-scm-1.rockspec" then
      assert(ws.version == "'"$version"'", "ws.version is " .. ws.version .. ", the rockspec says '"$version"'")
    end
    print("rockspec: '"$spec"' on Lua '"$v"': installed module works")')
  # The lua-ws command: installed into the tree's bin/ and able to load ws.
  "$tree/$v/bin/lua-ws" --help | grep -q -- '--exec' ||
    { echo "rockspec: $spec on Lua $v: bin/lua-ws missing or broken"; exit 1; }
  out=$(cd "$tree" && "$tree/$v/bin/lua-ws" -x hi ws://127.0.0.1:1/ 2>&1 || true)
  case $out in *"cannot connect"*) ;; *)
    echo "rockspec: $spec on Lua $v: the installed lua-ws cannot load ws: $out"; exit 1 ;; esac
  echo "rockspec: $spec on Lua $v: lua-ws command works"
done
