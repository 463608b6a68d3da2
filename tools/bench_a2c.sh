#!/usr/bin/env bash
# The A2C train-step benchmark (forward + backward + Adam at batch 32): kiln against LibTorch (in
# one program, bench/a2c_step_libtorch.cpp) and against PyTorch eager (bench/a2c_step_pytorch.py).
#
#   tools/bench_a2c.sh [BUILD_DIR]        (default build/; configured with -Dlibtorch=enabled)
#
# Builds the two bench programs it needs, runs them, then prints the PyTorch ratio and whether the
# PyTorch trajectory matches kiln's. Without LibTorch it runs bench/a2c_step.cpp (kiln and its f64
# reference only). Both peers run in their best configuration on this machine: tools/peer_sweep.sh
# tries every BLAS x malloc combination first (each program itself measures 1 and all threads and
# keeps the better), prints every figure, and the final runs use the best. Everything printed is
# `name: value`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
python=/usr/bin/python3  # Debian's python3-torch is installed for the system interpreter

source tools/bench_lib.sh
exe=$(libtorch_peer "$dir" bench/bench_a2c_step_libtorch "kiln only")
exe=${exe:-bench/bench_a2c_step}
ninja -C "$dir" -j "${JOBS:-2}" "$exe" >/dev/null

out=$(mktemp)
trap 'rm -f "$out" "$out.sweep"' EXIT
# best_env PREFIX METRIC COMMAND...: sweeps COMMAND's configurations, prints the sweep with its
# names prefixed, and leaves the best configuration's VAR=value words in $best_env.
best_env=
best_env() {
  local prefix=$1 metric=$2
  shift 2
  bash tools/peer_sweep.sh "$metric" lower -- "$@" >"$out.sweep"
  sed "s/^peer_/${prefix}_peer_/" "$out.sweep"
  best_env=$(sed -n 's/^peer_best_env: //p' "$out.sweep")
}
if [[ $exe == bench/bench_a2c_step_libtorch ]]; then
  best_env libtorch libtorch_a2c_step_us "$dir/$exe"
  # shellcheck disable=SC2086  # VAR=value words
  env $best_env "$dir/$exe" | tee "$out"
else
  "$dir/$exe" | tee "$out"
fi

value() { sed -n "s/^$1: //p" "$out" | head -n 1; }

if ! "$python" -c 'import torch' 2>/dev/null; then
  echo "note: $python cannot import torch (apt-get install python3-torch); no PyTorch figures" >&2
  exit 0
fi
best_env pytorch pytorch_a2c_step_us "$python" bench/a2c_step_pytorch.py
# shellcheck disable=SC2086
env $best_env "$python" bench/a2c_step_pytorch.py | tee -a "$out"

kiln=$(value kiln_a2c_step_us)
pytorch=$(value pytorch_a2c_step_us)
awk -v k="$kiln" -v p="$pytorch" 'BEGIN { printf "speedup_vs_pytorch: %.4g\ngoal_speedup_vs_pytorch: 60\n", p / k }'
# One thread each, by CPU time: the ratio least disturbed by other processes on a shared machine.
kiln_cpu=$(value kiln_a2c_step_cpu_us)
pytorch_cpu=$(value pytorch_1thread_a2c_step_cpu_us)
awk -v k="$kiln_cpu" -v p="$pytorch_cpu" 'BEGIN { printf "speedup_vs_pytorch_1thread_cpu: %.4g\n", p / k }'

# PyTorch's Adam applies eps slightly differently from Keras and kiln (see a2c_step_libtorch.cpp):
# the trajectories agree to ~1e-4, far inside the 1e-3 that would reveal different math.
worst=0
for step in 0 1 10 99; do
  worst=$(awk -v a="$(value kiln_loss_step_$step)" -v b="$(value pytorch_loss_step_$step)" -v w="$worst" \
    'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; if (m < 1e-3) m = 1e-3; r = d / m; print (r > w ? r : w) }')
done
echo "loss_max_rel_diff_vs_pytorch: $worst"
awk -v w="$worst" 'BEGIN { print "loss_match_vs_pytorch: " (w <= 1e-3 ? "yes" : "no") }'
