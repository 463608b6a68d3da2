#!/usr/bin/env bash
# Side-by-side speed of two builds of kiln (e.g. main before and after a core change): runs the
# A2C step, the seed CNN and MLP train steps, dense 4->128 batch 1 and the fused 8-op chain from
# each build's bench/ directory, alternating before/after RUNS times (default 3), keeps the best
# figure of each side (other processes can only slow a run down) and prints
#   <metric>_before: X, <metric>_after: Y, <metric>_after_vs_before: Y/X (time ratio: < 1 is faster)
#   tools/bench_before_after.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR
# The bench programs must be built in both (ninja -C DIR bench/bench_a2c_step bench/bench_vision_train
# bench/bench_dense_layer bench/bench_fused_chain).
set -euo pipefail
before=$1 after=$2
runs=${RUNS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# metric name in the program's output, program, arguments; all are times (lower is better)
metrics=(
  "kiln_a2c_step_us|bench_a2c_step|"
  "kiln_cnn_batch64_ms_per_step|bench_vision_train|--model cnn --rounds 3"
  "kiln_mlp_batch100_ms_per_step|bench_vision_train|--model mlp --rounds 3"
  "dense_b1_kiln_1t_us|bench_dense_layer|"
  "fused_kiln_1t_ms|bench_fused_chain|"
)
programs=("bench_a2c_step|" "bench_vision_train|--model both --rounds 3" "bench_dense_layer|" "bench_fused_chain|")
for ((r = 0; r < runs; ++r)); do
  for entry in "${programs[@]}"; do
    prog=${entry%%|*} args=${entry#*|}
    for side in before after; do
      dir=$before; [[ $side == after ]] && dir=$after
      # shellcheck disable=SC2086
      "$dir/bench/$prog" $args >>"$tmp/$side.$prog" 2>/dev/null
    done
  done
done
best() {  # best METRIC FILE: the smallest value of METRIC over the runs
  sed -n "s/^$1: //p" "$2" | sort -g | head -n 1
}
for m in "${metrics[@]}"; do
  name=${m%%|*} rest=${m#*|} prog=${rest%%|*}
  b=$(best "$name" "$tmp/before.$prog") a=$(best "$name" "$tmp/after.$prog")
  echo "${name}_before: $b"
  echo "${name}_after: $a"
  if [[ -n "$b" && -n "$a" ]]; then
    python3 -c "print('${name}_after_vs_before: %.3f' % ($a / $b))"
  else
    echo "${name}_after_vs_before: missing"
  fi
done
