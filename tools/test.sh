#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine, builds and runs all tests.
#   tools/test.sh              release build (-O2) in build/
#   tools/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/, for the
#                              AVX2 instruction set (-march=x86-64-v3) whatever the machine has beyond it
#   tools/test.sh --portable   the kernel and model-step tests built for plain x86-64 (-Dnative=false:
#                              SSE2 only, no -march) in build-portable/
# The release build compiles for the machine (-march=native: AVX-512 where it has it), so the three
# passes together run kiln's CPU kernels on every code path Eigen and kiln's packet math select.
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
targets=()    # empty: everything
test_names=()
if [[ "${1:-}" == "--sanitize" ]]; then
  dir=build-asan
  label=sanitize
  # -O0 -g1 for the tests (line tables for the reports): a third less compile time than -O1
  # (test_vision_models_conv: 55 s against 83 s), and the sanitizers miss nothing at -O0. The
  # examples, whose CI runs train networks, keep -O1 (examples/meson.build). -O2 -g once made
  # this build take 3.6x the release build's compile time.
  # The AVX2 path: on an AVX-512 machine the release build never runs it.
  isa=-march=native
  grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && isa=-march=x86-64-v3
  opts=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=plain -Doptimization=0 -Ddebug=false -Db_ndebug=false
        -Dnative=false "-Dcpp_args=['-g1','$isa']" -Dcuda=disabled -Dlibtorch=disabled)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
elif [[ "${1:-}" == "--portable" ]]; then
  dir=build-portable
  label=portable
  opts=(-Dnative=false -Dcuda=disabled -Dlibtorch=disabled)
  # Every op against its reference (op_cases*), the GEMM, reduction, elementwise and window
  # kernels, and one SGD step of three image classifiers against PyTorch.
  test_names=(test_op_cases test_op_cases_windows test_op_cases_structural test_matmul test_reduce test_elementwise test_vision_ops
              test_vision_step_reference)
  targets=("${test_names[@]/#/tests/}")
fi
phase "$label: packages"
# An existing build directory (a local rerun) gets the options through `meson configure`: meson
# 1.0's `setup --reconfigure` keeps the old cpp_args.
if [[ -f "$dir/build.ninja" ]]; then
  meson setup --reconfigure "$dir" >/dev/null
  ((${#opts[@]} == 0)) || meson configure "$dir" "${opts[@]}" >/dev/null
else
  meson setup "$dir" "${opts[@]}" >/dev/null
fi
phase "$label: configure"
ninja -C "$dir" -j"$(nproc)" "${targets[@]}"
phase "$label: build"
status=0
meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$(nproc)" "${test_names[@]}" || status=$?
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
