#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds and runs all tests.
#   tools/test.sh              release build (-O2) in build/
#   tools/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (-O1) in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
dir=build
opts=()
if [[ "${1:-}" == "--sanitize" ]]; then
  dir=build-asan
  # -O1 -g1: the sanitizers' recommended optimization, with line tables for the reports; -O2 -g
  # made this build take 3.6x the release build's compile time (45 of CI's 61 minutes).
  opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=plain -Doptimization=1 -Ddebug=false -Db_ndebug=false -Dcpp_args=-g1
        -Dcuda=disabled -Dlibtorch=disabled)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [[ -f "$dir/build.ninja" ]]; then meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null; else meson setup "$dir" "${opts[@]}" >/dev/null; fi
ninja -C "$dir" -j"$(nproc)"
status=0
meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" || status=$?
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
