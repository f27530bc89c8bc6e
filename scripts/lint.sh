#!/usr/bin/env bash
# luacheck over every Lua file; clang-format (.clang-format) and clang-tidy
# (default checks) over the C core.
set -euo pipefail
cd "$(dirname "$0")/.."
luacheck -q lua spec examples bin
bash scripts/check_layers.sh
if command -v clang-format >/dev/null; then
  clang-format --dry-run -Werror csrc/*/*.[ch]
  echo "clang-format: clean"
fi
if command -v clang-tidy >/dev/null; then
  out=$(for f in csrc/*/*.c; do
          clang-tidy -quiet "$f" -- -std=c99 -D_POSIX_C_SOURCE=200809L -Icsrc \
            $(pkg-config --cflags lua5.4) 2>/dev/null
        done | grep -E 'warning:|error:' || true)
  if [ -n "$out" ]; then
    echo "$out"
    echo "clang-tidy: warnings above"
    exit 1
  fi
  echo "clang-tidy: clean"
fi
