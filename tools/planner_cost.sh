#!/usr/bin/env bash
# Compile-time cost of constant-evaluated planning (graph/plan.hpp) on synthetic graphs.
#
#   tools/planner_cost.sh [BUILD_DIR] [SIZES...]      (defaults: build, 1000 5000 20000)
#
# For every size N it writes a translation unit whose model builds a graph of about N nodes in a
# constexpr loop of builder calls (a ladder of elementwise ops with a matmul every 8 steps, a
# reduction every 16 and a variable update every 64, so fusion, epilogues, the schedule of assigns
# and slot reuse all have work to do), and compiles it alone under /usr/bin/time with the flags
# meson uses for tests/test_compile_plan.cpp (from BUILD_DIR/compile_commands.json), twice:
#   build  - the model is built, lowered and frozen (program<M>::nodes), no plan
#   plan   - the same plus program<M>::plan (make_plan over the frozen nodes)
# and prints
#   nodes: N  groups: G  slots: S  variant: plan  compile_s: X  wall_s: W  max_rss_mb: Y
# compile_s is the compiler's CPU time (user + system), which a machine shared with other builds
# disturbs far less than the wall time printed beside it. The planning cost is the difference
# between the two lines of one size.
#
# Measured 2026-12-03 (g++ 12.2, -O2, the 2-core CI machine; CPU seconds, peak RSS), planning cost
# = plan minus build:
#   nodes    build s / MB     plan s / MB      planning s / MB    before the pass split (wall s / MB)
#     999      3.7 /  397       4.8 /  495       1.1 /   98           8 /  ~500
#    4990     18.5 / 1846      24.4 / 2323       5.9 /  477         589 / 13360
#    9979     37.6 / 3575      50.4 / 4531      12.8 /  956           -
#   19958     75.5 / 7035      97.5 / 8960      22.0 / 1925           -
# Building and lowering the graph dominates: program<M> evaluates the model and lower() twice (once
# for the array sizes, once to fill them), and lower() costs more than the model itself.
#
# Constant-evaluation limits: building (not only planning) a graph of a few thousand nodes exceeds
# GCC's default -fconstexpr-ops-limit (2^25 operations per constant expression), and the node loops
# GCC's -fconstexpr-loop-limit (262144 iterations), so both are raised here (EXTRA_FLAGS replaces
# them). Clang would need -fconstexpr-steps instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:-build}
[[ $# -gt 0 ]] && shift
sizes=("$@")
[[ ${#sizes[@]} -eq 0 ]] && sizes=(1000 5000 20000)
extra=${EXTRA_FLAGS:--fconstexpr-ops-limit=1099511627776 -fconstexpr-loop-limit=100000000}
[[ -x /usr/bin/time ]] || { echo "planner_cost: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
[[ -f "$dir/compile_commands.json" ]] || { echo "planner_cost: no $dir/compile_commands.json (meson setup $dir first)" >&2; exit 2; }

# The compiler and flags of an existing test TU, without its -o/-c/-M* parts.
read -r compiler flags < <(python3 - "$dir/compile_commands.json" "$root" <<'PY'
import json, os, shlex, sys
db, root = json.load(open(sys.argv[1])), sys.argv[2]
for e in db:
    if e["file"].endswith("tests/test_compile_plan.cpp"):
        args = shlex.split(e.get("command") or " ".join(e["arguments"]))
        keep, skip = [], False
        for a in args[1:]:
            if skip: skip = False; continue
            if a in ("-o", "-MQ", "-MF", "-c"): skip = a != "-c"; continue
            if a in ("-MD",) or a.endswith(".cpp"): continue
            if a.startswith("-I") and not os.path.isabs(a[2:]):
                a = "-I" + os.path.normpath(os.path.join(e["directory"], a[2:]))
            keep.append(a)
        print(args[0], " ".join(keep))
        break
PY
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gen() {  # gen N PLAN(0|1) > file
  cat <<CPP
#include <cstdio>
#include "graph/program.hpp"
#include "ops/elementwise.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"
#include "ops/state.hpp"
using namespace kiln;
// About 6.56 nodes per step (CSE shares the scalars).
inline constexpr int steps = $1 * 100 / 656;
constexpr auto synthetic = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 16});
  auto weight = [&g](int k) {  // a fresh variable "w<k>"
    char name[12] = {'w'};
    int len = 1;
    for (int d = 1000000; d > 0; d /= 10) name[len++] = char('0' + k / d % 10);
    return g.variable(std::string_view(name, std::size_t(len)), f32, {16, 16}, init::glorot_uniform(std::uint64_t(k + 1)));
  };
  tensor w = weight(0);
  tensor h = x;
  tensor total = g.scalar(0.0, f32);
  for (int i = 0; i < steps; ++i) {
    tensor a = tanh(h * 0.5 + 0.25);
    tensor b = a * h - sigmoid(a);
    if (i % 8 == 7) b = relu(matmul(b, w) + b);           // a matmul with its epilogue
    if (i % 16 == 15) total = total + reduce_sum(b);       // a reduction kept to the end
    if (i % 64 == 63) {                                     // an update after every reader of w
      assign(w, w * 0.999);
      w = weight(i / 64 + 1);
    }
    h = b;
  }
  g.output("y", h);
  g.output("total", total);
  return g;
};
using P = program<decltype(synthetic)>;
#if $2
static_assert(P::plan_ok);
constexpr int groups = P::plan.n_groups;
constexpr int slots = P::plan.n_slots;
#else
static_assert(P::graph_ok);
constexpr int groups = -1;
constexpr int slots = -1;
#endif
int main() { std::printf("%zu %d %d\n", P::N, groups, slots); }
CPP
}

for n in "${sizes[@]}"; do
  for variant in build plan; do
    planned=$([[ $variant == plan ]] && echo 1 || echo 0)
    src="$work/synthetic_${n}_$variant.cpp"
    gen "$n" "$planned" >"$src"
    # shellcheck disable=SC2086
    if ! /usr/bin/time -v -o "$work/time.txt" $compiler $flags $extra -o "$work/a.out" "$src" >"$work/log.txt" 2>&1; then
      echo "nodes: ~$n  variant: $variant  FAILED to compile:" >&2
      head -40 "$work/log.txt" >&2
      continue
    fi
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; ++i) s = s * 60 + t[i]; print s}' "$work/time.txt")
    secs=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.1f", u + s}' "$work/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%d", $2 / 1024}' "$work/time.txt")
    read -r nodes groups slots < <("$work/a.out")
    printf 'nodes: %-6s groups: %-6s slots: %-4s variant: %-5s compile_s: %-7s wall_s: %-7s max_rss_mb: %s\n' \
      "$nodes" "$groups" "$slots" "$variant" "$secs" "$wall" "$rss"
  done
done
