#!/usr/bin/env bash
# The roofline table of kiln's benchmarks on this machine: for each, the FLOPs and bytes of one
# step (bench/roofline.hpp: matrix products 2·M·N·K, one FLOP per other arithmetic element; bytes
# written and read by each group of the schedule, as if nothing stayed in cache), kiln's time on
# all cores, the machine's measured ceilings (bench/machine_peak.cpp: FMA throughput, STREAM
# triad bandwidth) and the fraction of the attainable rate reached, where attainable =
# min(FMA peak, bytes/FLOP-limited rate = bandwidth x FLOPs / bytes).
#
#   tools/roofline.sh [BUILD_DIR]      (default build/)
#
# Prints `name: value` lines, then the same as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
[[ -f "$dir/build.ninja" ]] || meson setup "$dir" >/dev/null
progs=(bench_machine_peak bench_dense_layer bench_a2c_step bench_vision_train bench_fused_chain)
ninja -C "$dir" -j "${JOBS:-2}" "${progs[@]/#/bench/}" >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for p in "${progs[@]}"; do
  args=()
  [[ $p == bench_vision_train ]] && args=(--rounds 3)
  "$dir/bench/$p" "${args[@]}" >>"$out"
done
value() { sed -n "s/^$1: //p" "$out" | head -n 1; }
peak=$(value peak_fma_gflops) bw=$(value stream_triad_gbps)
echo "peak_fma_gflops: $peak"
echo "stream_triad_gbps: $bw"
echo "packet_lanes_f32: $(value packet_lanes_f32)"
# name | work tag | time metric | seconds per unit of the metric
rows=(
  "dense 4->128, batch 1|dense_b1|dense_b1_kiln_us|1e-6"
  "dense 784->300, batch 1024|dense_b1024|dense_b1024_kiln_us|1e-6"
  "A2C train step, batch 32|kiln_a2c_step|kiln_a2c_step_us|1e-6"
  "seed CNN train step, batch 64|kiln_cnn_batch64|kiln_cnn_batch64_ms_per_step|1e-3"
  "MLP 784-300-10 train step, batch 100|kiln_mlp_batch100|kiln_mlp_batch100_ms_per_step|1e-3"
  "fused 8-op chain, 16M elements|fused|fused_kiln_ms|1e-3"
)
table=("| benchmark | MFLOP/step | MB/step | FLOP/byte | kiln time | GFLOP/s | % FMA peak | GB/s | attainable GFLOP/s | % attainable |"
       "|---|---|---|---|---|---|---|---|---|---|")
for row in "${rows[@]}"; do
  IFS='|' read -r name tag metric unit <<<"$row"
  flops=$(value "${tag}_flops_per_step") bytes=$(value "${tag}_bytes_per_step") t=$(value "$metric")
  [[ -z "$flops" || -z "$t" ]] && { echo "warning: no figures for $name" >&2; continue; }
  line=$(awk -v f="$flops" -v b="$bytes" -v t="$t" -v u="$unit" -v p="$peak" -v w="$bw" -v name="$name" -v tag="$tag" 'BEGIN {
    s = t * u; g = f / s / 1e9; gbs = b / s / 1e9; ai = f / b; att = ai * w; if (att > p) att = p;
    printf "%s_gflops: %.4g\n%s_pct_fma_peak: %.3g\n%s_gbps: %.4g\n%s_flop_per_byte: %.3g\n%s_pct_attainable: %.3g\n", tag, g, tag, 100 * g / p, tag, gbs, tag, ai, tag, 100 * g / att
    printf "ROW| %s | %.4g | %.4g | %.3g | %s | %.3g | %.2g | %.3g | %.3g | %.2g |\n", name, f / 1e6, b / 1e6, ai, (u == 1e-6 ? t " us" : t " ms"), g, 100 * g / p, gbs, att, 100 * g / att }')
  grep -v '^ROW' <<<"$line"
  table+=("$(sed -n 's/^ROW//p' <<<"$line")")
done
printf '%s\n' "${table[@]}"
