#!/usr/bin/env bash
# kiln against hand-written Eigen on each instruction set this machine runs: the same programs
# built for plain x86-64 (SSE2), for AVX2 (-march=x86-64-v3), for AVX-512 (-march=x86-64-v4, when
# the CPU has it) and for -march=native, each in build-isa-<name>/ (kiln and its Eigen peer are
# compiled with the same flags). Prints every figure prefixed with the ISA's name, then per ISA
# the ratios that issue 13 targets: dense 4->128 batch 1 against Eigen (must be <= 1: kiln never
# slower), the A2C step, the seed CNN and MLP steps, the FMA peak of that ISA, and the one-thread
# GEMM kernel on the MLP's layers with its share of one core's FMA peak (and Eigen's).
#
#   tools/bench_isa.sh [ISA...]     (default: x86-64 x86-64-v3 [x86-64-v4] native)
#
# Everything printed is `name: value`.
set -euo pipefail
cd "$(dirname "$0")/.."
isas=("$@")
if ((${#isas[@]} == 0)); then
  isas=(x86-64 x86-64-v3)
  grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo && isas+=(x86-64-v4)
  isas+=(native)
fi
progs=(bench_dense_layer bench_a2c_step bench_vision_train bench_machine_peak bench_gemm)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for isa in "${isas[@]}"; do
  dir=build-isa-$isa
  if [[ ! -f "$dir/build.ninja" ]]; then
    meson setup "$dir" -Dnative=false "-Dcpp_args=['-march=$isa']" -Dcuda=disabled -Dlibtorch=disabled >/dev/null
  fi
  ninja -C "$dir" -j "${JOBS:-2}" "${progs[@]/#/bench/}" >/dev/null
  : >"$out"
  "$dir/bench/bench_machine_peak" >>"$out"
  "$dir/bench/bench_dense_layer" >>"$out"
  "$dir/bench/bench_a2c_step" >>"$out"
  "$dir/bench/bench_vision_train" --rounds 5 >>"$out"
  "$dir/bench/bench_gemm" >>"$out"
  tag=${isa//-/_}
  sed "s/^/${tag}_/" "$out"
  value() { sed -n "s/^$1: //p" "$out" | head -n 1; }
  awk -v k="$(value dense_b1_kiln_1t_us)" -v e="$(value dense_b1_eigen_1t_us)" -v t="$tag" \
    'BEGIN { printf "%s_dense_b1_kiln_1t_vs_eigen_time_ratio: %.3g\n%s_dense_b1_kiln_never_slower_than_eigen: %s\n", t, k / e, t, (k <= e ? "yes" : "no") }'
  for p in mlp_forward_100x784x300 mlp_weight_grad_784x100x300; do
    awk -v k="$(value kiln_gflops_$p)" -v e="$(value eigen_gflops_$p)" -v peak="$(value peak_fma_gflops_1t)" -v t="$tag" -v p="$p" \
      'BEGIN { printf "%s_gemm_%s_kiln_percent_of_1t_fma_peak: %.3g\n%s_gemm_%s_eigen_percent_of_1t_fma_peak: %.3g\n", t, p, 100 * k / peak, t, p, 100 * e / peak }'
  done
done
