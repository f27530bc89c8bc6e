#!/usr/bin/env bash
# Write the rockspecs' generated lists from the tree, so they cannot drift:
#   lua/ws/**.lua -> build.modules (ws, ws.x, ws.x.y)
#   csrc/{core,io,lua}/*.c -> build.modules["ws.core"].sources (not
#                    csrc/testing: ws.testing is for the specs, never installed)
#   bin/*         -> build.install.bin
# rockspec/lua-ws-scm-1.rockspec is the one edited by hand (outside the
# "generated" markers); each released version listed in RELEASES below is
# derived from it: same text, its own version and a source pinned to the
# tag v<version>.
#   scripts/gen_rockspec.sh           rewrite rockspec/*.rockspec
#   scripts/gen_rockspec.sh --check   exit 1 and show the diff if stale
set -euo pipefail
cd "$(dirname "$0")/.."

RELEASES=(0.1.0-1)
scm=rockspec/lua-ws-scm-1.rockspec

lua_modules() {
  find lua -name '*.lua' | LC_ALL=C sort | while read -r f; do
    m=${f#lua/}; m=${m%.lua}; m=${m%/init}; m=${m//\//.}
    printf '    ["%s"] = "%s",\n' "$m" "$f"
  done
}

c_sources() {
  find csrc/core csrc/io csrc/lua -name '*.c' | LC_ALL=C sort | while read -r f; do
    printf '        "%s",\n' "$f"
  done
}

bin_scripts() {
  [ -d bin ] || return 0
  local files
  files=$(find bin -maxdepth 1 -type f | LC_ALL=C sort)
  [ -n "$files" ] || return 0
  printf '  install = {\n    bin = {\n'
  for f in $files; do printf '      ["%s"] = "%s",\n' "${f#bin/}" "$f"; done
  printf '    },\n  },\n'
}

# fill FILE: replace what lies between "-- begin generated: NAME" and
# "-- end generated: NAME" with the output of the matching function.
fill() {
  local src=$1 out=$2 tmp
  tmp=$(mktemp -d)
  lua_modules >"$tmp/lua modules"
  c_sources >"$tmp/c sources"
  bin_scripts >"$tmp/bin scripts"
  awk -v dir="$tmp" '
    /-- begin generated: / { print; name = $0; sub(/.*-- begin generated: /, "", name)
                             while ((getline l < (dir "/" name)) > 0) print l
                             skip = 1; next }
    /-- end generated: /   { skip = 0 }
    !skip { print }' "$src" >"$out"
  rm -rf "$tmp"
}

# derive rockspec for version V (e.g. 0.1.0-1) from the scm one
derive() {
  local v=$1 src=$2
  awk -v v="$v" -v tag="v${v%-*}" '
    /^version = / { print "version = \"" v "\""; next }
    /^source = \{/ { print; insource = 1; next }
    insource && /^\}/ { print "  tag = \"" tag "\","; insource = 0 }
    { print }' "$src"
}

check=0
[ "${1:-}" = --check ] && check=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fill "$scm" "$out/lua-ws-scm-1.rockspec"
for v in "${RELEASES[@]}"; do
  derive "$v" "$out/lua-ws-scm-1.rockspec" >"$out/lua-ws-$v.rockspec"
done

stale=0
for f in "$out"/*.rockspec; do
  dst=rockspec/$(basename "$f")
  if ! cmp -s "$f" "$dst"; then
    if [ $check = 1 ]; then
      echo "rockspec: $dst is not what scripts/gen_rockspec.sh writes from the tree:"
      diff -u "$dst" "$f" || true
      stale=1
    else
      cp "$f" "$dst"
      echo "wrote $dst"
    fi
  fi
done
if [ $stale = 1 ]; then
  echo "rockspec: run 'bash scripts/gen_rockspec.sh' and commit rockspec/ (new lua/ws/*.lua," \
       "csrc/*/*.c and bin/* files are listed automatically; edit anything else in $scm)"
  exit 1
fi
