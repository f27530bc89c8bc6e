#!/usr/bin/env bash
# Print the C source list of the rockspec; rock_check.sh compares it with csrc/.
cd "$(dirname "$0")/.."
for f in csrc/*/*.c; do printf '        "%s",\n' "$f"; done
