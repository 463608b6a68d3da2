#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds and runs all tests.
#   tools/test.sh              release build (-O2) in build/
#   tools/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (-O1) in build-asan/
# Each phase's wall time is appended to $KILN_TIMING_FILE when set (.ci/run prints the summary),
# and printed at the end either way.
set -euo pipefail
cd "$(dirname "$0")/.."
timing=()
phase_start=$SECONDS
phase() {  # phase NAME: records the time since the previous mark under NAME
  local took=$((SECONDS - phase_start))
  timing+=("$(printf '%-28s %4d:%02d' "$1" $((took / 60)) $((took % 60)))")
  [[ -n "${KILN_TIMING_FILE:-}" ]] && printf '%-28s %4d:%02d\n' "$1" $((took / 60)) $((took % 60)) >>"$KILN_TIMING_FILE"
  phase_start=$SECONDS
}
bash tools/install_deps.sh
dir=build
label=release
opts=()
if [[ "${1:-}" == "--sanitize" ]]; then
  dir=build-asan
  label=sanitize
  # -O1 -g1: the sanitizers' recommended optimization, with line tables for the reports; -O2 -g
  # made this build take 3.6x the release build's compile time (45 of CI's 61 minutes).
  opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=plain -Doptimization=1 -Ddebug=false -Db_ndebug=false -Dcpp_args=-g1
        -Dcuda=disabled -Dlibtorch=disabled)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
phase "$label: packages"
if [[ -f "$dir/build.ninja" ]]; then meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null; else meson setup "$dir" "${opts[@]}" >/dev/null; fi
phase "$label: configure"
ninja -C "$dir" -j"$(nproc)"
phase "$label: build"
status=0
meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" || status=$?
phase "$label: tests"
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
slowest = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r["result"] == "SKIP": skipped += 1
    else: failed += 1
    slowest.append((r.get("duration", 0), r["name"]))
print(f"{passed} passed, {failed} failed, {skipped} skipped")
print("slowest tests: " + ", ".join(f"{n} {d:.0f}s" for d, n in sorted(slowest, reverse=True)[:5]))
PY
echo "timing ($label):"
printf '  %s\n' "${timing[@]}"
exit $status
