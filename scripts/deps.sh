#!/usr/bin/env bash
# Install what building and testing lua-ws needs on Debian, only when missing.
set -euo pipefail

# LuaJIT is OpenResty's (luajit2): nginx's lua module needs its library, and
# it conflicts with Debian's plain luajit (apt replaces that one).
pkgs=(pkg-config lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev
      luajit2 libluajit2-5.1-dev libssl-dev zlib1g-dev openssl lua-busted luarocks
      lua-check lua-ldoc valgrind clang-tidy clang-format tinyproxy-bin bsdutils
      python3 util-linux libhiredis-dev redis-server)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Peers of the browser spec (Chromium, playwright-core); that spec installs
# them itself too and fails on CI when they are missing.
bash "$(dirname "$0")/browser_deps.sh" >/dev/null || echo "deps: browser peers missing"

# Hosts the embedding specs run lua-ws inside (cqueues, luv, Neovim, Copas);
# those specs skip with a visible reason when one is missing.
bash "$(dirname "$0")/embed_deps.sh" || echo "deps: embedding hosts missing"
