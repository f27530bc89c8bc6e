#!/usr/bin/env bash
# Build and run the libFuzzer harnesses in fuzz/ under ASan+UBSan.
#   scripts/fuzz.sh [--ci] [--build-only] [--seconds N] [harness ...]
#     harnesses: frame http handshake_server handshake_client session utf8, and
#     inflate once csrc/core/deflate.c exists (default: all)
#     --seconds N   run each harness N seconds (default $FUZZ_SECONDS or 60;
#                   --ci: 20); one harness at a time
#     --ci          short bounded run; fails on any crash or invariant breach
#     --build-only  build the harnesses and the seed corpus, run nothing
# Binaries go to build/fuzz/bin, the corpus (seeded from fuzz/gen_corpus.c
# and grown by the fuzzer) to build/fuzz/corpus/<harness>, crashing inputs
# to build/fuzz/artifacts.  Reproduce one with
#   build/fuzz/bin/<harness> build/fuzz/artifacts/<harness>-crash-...
# Prints executions per second and total executions per harness.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(frame http handshake_server handshake_client session utf8)
seconds=${FUZZ_SECONDS:-60}
ci=0 build_only=0 explicit_seconds=0
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1 ;;
    --build-only) build_only=1 ;;
    --seconds) seconds=$2; explicit_seconds=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1") ;;
  esac
  shift
done
if [ "$ci" = 1 ] && [ "$explicit_seconds" = 0 ]; then
  seconds=${FUZZ_CI_SECONDS:-20}
fi
# A harness appears once csrc/core/deflate.c exists (see fuzz/README.md).
if [ -f fuzz/inflate_fuzz.c ] && [ -f csrc/core/deflate.c ]; then
  case " ${all[*]} " in *" inflate "*) ;; *) all+=(inflate) ;; esac
fi
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")

# clang with libFuzzer and the sanitizer runtimes (Debian: clang plus
# libclang-rt-N-dev where the runtimes are split out).
CLANG=${CLANG:-clang}
have_fuzzer() {
  command -v "$CLANG" >/dev/null 2>&1 || return 1
  local t; t=$(mktemp -d)
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' >"$t/t.c"
  "$CLANG" -fsanitize=fuzzer,address,undefined -o "$t/t" "$t/t.c" >/dev/null 2>&1
  local rc=$?; rm -rf "$t"; return $rc
}
if ! have_fuzzer; then
  echo "fuzz: installing clang and its libFuzzer runtime"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang >/dev/null
  if ! have_fuzzer; then
    ver=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "libclang-rt-$ver-dev" >/dev/null 2>&1 || true
  fi
  have_fuzzer || { echo "fuzz: clang cannot build -fsanitize=fuzzer binaries" >&2; exit 1; }
fi

out=build/fuzz
mkdir -p "$out/bin" "$out/corpus" "$out/artifacts" "$out/logs"
# The pure protocol core: no sockets, no Lua.
core=()
for f in buf error frame http handshake session mask utf8 deflate; do
  [ -f "csrc/core/$f.c" ] && core+=("csrc/core/$f.c")
done
libs=(-lssl -lcrypto -lz)
san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
cflags=(-std=c99 -g -O1 -D_POSIX_C_SOURCE=200809L -Icsrc/core -Ifuzz -Wall -Wextra -Werror
        -Wno-unused-function)

echo "fuzz: building harnesses"
for h in "${all[@]}"; do
  "$CLANG" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer -o "$out/bin/$h" \
    "fuzz/${h}_fuzz.c" "${core[@]}" "${libs[@]}"
done
gen_flags=()
[ -f csrc/core/deflate.c ] && gen_flags+=(-DWS_FUZZ_HAVE_DEFLATE)
"$CLANG" "${cflags[@]}" "${gen_flags[@]}" "${san[@]}" -o "$out/bin/gen_corpus" fuzz/gen_corpus.c "${core[@]}" "${libs[@]}"
"$out/bin/gen_corpus" "$out/corpus"
[ "$build_only" = 1 ] && { echo "fuzz: built into $out/bin"; exit 0; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for h in "${harnesses[@]}"; do
  [ -x "$out/bin/$h" ] || { echo "fuzz: no harness '$h'" >&2; exit 2; }
  log="$out/logs/$h.log"
  echo "fuzz: $h for ${seconds}s"
  set +e
  "$out/bin/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=100000 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$h-" \
    "$out/corpus/$h" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  corpus=$(find "$out/corpus/$h" -type f | wc -l)
  line=$(printf '%-18s %8s s %12s execs %9s exec/s  cov %6s  corpus %6s' \
    "$h" "$seconds" "${execs:-0}" "${rate:-0}" "${cov:-0}" "$corpus")
  if [ $rc -ne 0 ]; then
    line="$line  FAILED (rc $rc, see $log)"
    status=1
    grep -E 'ERROR|invariant failed|runtime error|Test unit written' "$log" | head -20 >&2 || true
  fi
  summary+=("$line")
done
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
exit $status
