#!/usr/bin/env bash
# Includes point down only: csrc/testing -> csrc/lua -> csrc/io -> csrc/core.
# core does no socket I/O and knows no Lua; io knows no Lua; only csrc/lua
# and the specs' module csrc/testing include lua.h; nothing includes testing.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
check() { # folder, pattern of forbidden includes
  local hits
  hits=$(grep -nE "#include [<\"]($2)" csrc/"$1"/*.[ch] || true)
  if [ -n "$hits" ]; then echo "$hits"; echo "layers: csrc/$1 must not include $2"; bad=1; fi
}
check core 'io/|lua/|testing/|lua\.h|lauxlib\.h|lualib\.h|sys/epoll\.h|netdb\.h|openssl/ssl\.h'
check io 'lua/|testing/|lua\.h|lauxlib\.h|lualib\.h'
check lua 'testing/'
# No include cycle between files: every quoted include resolves to a file,
# and the include graph is acyclic.
python3 - <<'PY' || bad=1
import os, re, sys
root = "csrc"
graph = {}
for d in os.listdir(root):
    if not os.path.isdir(os.path.join(root, d)):
        continue
    for f in os.listdir(os.path.join(root, d)):
        if not f.endswith((".c", ".h")):
            continue  # objects a build may leave beside the sources
        p = os.path.join(d, f)
        deps = []
        for h in re.findall(r'#include "([^"]+)"', open(os.path.join(root, p)).read()):
            t = h if "/" in h else os.path.join(d, h)
            if not os.path.exists(os.path.join(root, t)):
                print("layers: %s includes %s, which is not in csrc/" % (p, h)); sys.exit(1)
            if t.endswith(".c"):
                print("layers: %s includes a .c file (%s)" % (p, h)); sys.exit(1)
            deps.append(t)
        graph[p] = deps
state = {}
def visit(n, path):
    if state.get(n) == 1:
        print("layers: include cycle " + " -> ".join(path + [n])); sys.exit(1)
    if state.get(n) == 2: return
    state[n] = 1
    for m in graph.get(n, []): visit(m, path + [n])
    state[n] = 2
for n in graph: visit(n, [])
PY
[ $bad = 0 ] && echo "layers: clean"
exit $bad
