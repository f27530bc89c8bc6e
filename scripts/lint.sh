#!/usr/bin/env bash
# luacheck over every Lua file of the project.
set -euo pipefail
cd "$(dirname "$0")/.."
luacheck -q lua spec examples
