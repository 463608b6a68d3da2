#!/usr/bin/env bash
# relu(x·W + b) at batch 1 (4 -> 128) and batch 1024 (784 -> 300): kiln against hand-written
# single-threaded Eigen (bench/dense_layer.cpp) and against LibTorch in its best configuration on
# this machine (bench/dense_layer_libtorch.cpp, after tools/peer_sweep.sh tried every BLAS x malloc
# combination on the batch-1 figure; the program measures LibTorch at 1 and all threads itself).
#
#   tools/bench_dense.sh [BUILD_DIR]        (default build/)
#
# Everything printed is `name: value`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
source tools/bench_lib.sh
peer=$(libtorch_peer "$dir" bench/bench_dense_layer_libtorch "kiln and Eigen only")
ninja -C "$dir" -j "${JOBS:-2}" bench/bench_dense_layer $peer >/dev/null
"$dir/bench/bench_dense_layer"
[[ -z "$peer" ]] && exit 0
sweep=$(mktemp)
trap 'rm -f "$sweep"' EXIT
bash tools/peer_sweep.sh dense_b1_libtorch_best_us lower -- "$dir/$peer" >"$sweep"
sed 's/^peer_/libtorch_peer_/' "$sweep"
# shellcheck disable=SC2086  # the best configuration's VAR=value words
env $(sed -n 's/^peer_best_env: //p' "$sweep") "$dir/$peer"
echo "goal_dense_b1_speedup_vs_libtorch: 40"
