#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang under ASan + UBSan and runs each for a
# bounded number of inputs, starting from its committed seed corpus (which is replayed first, so
# committed crash inputs are regression tests). Fails on any finding: a crash, a sanitizer report,
# a timeout, an out-of-memory, or an exception other than kiln::error.
#   tools/fuzz.sh [RUNS_PER_TARGET] [SECONDS_CAP_PER_TARGET]   (defaults 100000 and 25: CI, under 2 minutes on 2 cores)
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (parallel builds, default 2),
# FUZZ_TARGETS (names to run, default all). Needs Debian's clang and libclang-rt-14-dev.
# Findings are left in $FUZZ_BUILD_DIR/findings/<target>/; reproduce one with
#   $FUZZ_BUILD_DIR/fuzz_<target> $FUZZ_BUILD_DIR/findings/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100000}
cap=${2:-25}
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-2}
cxx=${CXX_FUZZ:-clang++}
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/^fuzz_//; s/\.cpp$//')}
mkdir -p "$build"

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -include tests/fuzz/source_location_shim.hpp -I. -Itests -isystem /usr/include/eigen3 -pthread)
start=$(date +%s)
# Builds in parallel ($jobs at a time); each compiler's output goes to its own log. A failed build
# leaves no binary (the old one is removed first), so it cannot pass with a stale target.
for t in $targets; do
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  rm -f "$build/fuzz_$t"
  "$cxx" "${flags[@]}" "tests/fuzz/fuzz_$t.cpp" -o "$build/fuzz_$t" -lz -ltbb >"$build/fuzz_$t.build.log" 2>&1 &
done
wait || true
for t in $targets; do
  if [[ ! -x "$build/fuzz_$t" ]]; then
    echo "fuzz $t: build failed:"
    tail -n 40 "$build/fuzz_$t.build.log"
    exit 1
  fi
done
echo "fuzz: built $(wc -w <<<"$targets") targets in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total_findings=0
for t in $targets; do
  work="$build/corpus/$t"       # new inputs found in this run (the committed seeds stay untouched)
  findings="$build/findings/$t"
  rm -rf "$findings"
  mkdir -p "$work" "$findings"
  t0=$(date +%s.%N)
  set +e
  "$build/fuzz_$t" -runs="$runs" -max_total_time="$cap" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$work" "tests/fuzz/corpus/$t" >"$build/fuzz_$t.log" 2>&1
  rc=$?
  set -e
  seconds=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz_$t.log" | tail -1)
  n=$(find "$findings" -type f | wc -l)
  if (( rc != 0 && n == 0 )); then n=1; fi
  echo "fuzz $t: ${done_runs:-?} runs, $n findings, $seconds s"
  if (( n > 0 )); then
    tail -n 60 "$build/fuzz_$t.log"
    total_findings=$(( total_findings + n ))
  fi
done
echo "fuzz: $total_findings findings in $(( $(date +%s) - start )) s"
(( total_findings == 0 ))
