#!/usr/bin/env bash
# Install the hosts the embedding specs run lua-ws inside, only when
# missing (Debian packages):
#   lua-cqueues  cqueues for Lua 5.1-5.4
#   lua-luv      libuv bindings for Lua 5.1-5.4
#   neovim       headless Neovim (its own LuaJIT, vim.loop)
#   lua-copas    Copas 1.x (Lua 5.1/5.2 only; lua-socket, lua-coxpcall)
#   nginx, libnginx-mod-http-lua   nginx with lua-nginx-module (OpenResty's
#                LuaJIT, luajit2, installed by deps.sh) and lua-resty-core
#   curl         HTTP requests to nginx endpoints in the ws.resty specs
# Prints "embed_deps: <pkg> missing" for what could not be installed and
# exits non-zero then; the specs skip with a visible reason.
set -uo pipefail
unset LD_PRELOAD

pkgs=(lua-cqueues lua-luv neovim lua-copas nginx libnginx-mod-http-lua curl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "embed_deps: not root, cannot apt-get install ${missing[*]}"; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq >/dev/null 2>&1
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1
fi
status=0
for p in "${missing[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    echo "embed_deps: $p missing"; status=1
  fi
done
exit $status
