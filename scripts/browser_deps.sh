#!/usr/bin/env bash
# Install the peers of the browser spec (spec/chat_browser_spec.lua), only
# when missing:
#   * Chromium (Debian package `chromium`, /usr/bin/chromium)
#   * playwright-core from npm, into build/node (git-ignored, owned by the
#     tests; never the global node_modules)
# Prints one line per step; exits non-zero when a peer is still missing.
#   scripts/browser_deps.sh           install what is missing
#   scripts/browser_deps.sh --check   only report, install nothing
set -uo pipefail
# Under `make sanitize` the specs run with libasan preloaded; the peers and
# Chromium must not inherit it.
unset LD_PRELOAD
cd "$(dirname "$0")/.."

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

chromium=${CHROMIUM:-/usr/bin/chromium}
node_dir=build/node
status=0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
fi

if [ -x "$chromium" ]; then
  echo "browser_deps: chromium present ($chromium)"
elif [ "$check_only" = 1 ]; then
  echo "browser_deps: chromium missing"; status=1
elif [ "$sudo" = none ]; then
  echo "browser_deps: chromium missing and not root (run: sudo apt-get install -y chromium)"; status=1
else
  echo "browser_deps: installing chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    $sudo apt-get update -qq >/dev/null 2>&1
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1
  fi
  if [ -x "$chromium" ]; then
    echo "browser_deps: chromium installed"
  else
    echo "browser_deps: chromium installation failed"; status=1
  fi
fi

if { ! command -v node >/dev/null || ! command -v npm >/dev/null; } && [ "$check_only" = 0 ] \
   && [ "$sudo" != none ]; then
  echo "browser_deps: installing nodejs and npm (apt-get)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm \
    >/dev/null 2>&1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser_deps: node/npm missing (apt-get install -y nodejs npm)"; status=1
elif [ -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  echo "browser_deps: playwright-core present ($node_dir)"
elif [ "$check_only" = 1 ]; then
  echo "browser_deps: playwright-core missing"; status=1
else
  echo "browser_deps: installing playwright-core into $node_dir (npm)"
  mkdir -p "$node_dir"
  # No browser download: playwright-core never fetches one; Chromium is the
  # Debian package.
  if PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$node_dir" --no-audit --no-fund \
       --loglevel=error playwright-core >/dev/null 2>&1 \
     && [ -f "$node_dir/node_modules/playwright-core/package.json" ]; then
    echo "browser_deps: playwright-core installed"
  else
    echo "browser_deps: playwright-core installation failed"; status=1
  fi
fi

exit $status
