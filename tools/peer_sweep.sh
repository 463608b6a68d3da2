#!/usr/bin/env bash
# Finds a LibTorch/PyTorch peer's best configuration on this machine: runs one benchmark command
# under every BLAS x allocator (x thread count) combination installed here and prints each figure
# and the best. A ratio is only as honest as its peer: the seed CNN's LibTorch step runs 8x faster
# with a malloc that keeps its freed pages (tcmalloc, or glibc with a fixed mmap threshold) than
# with glibc's defaults, which return its 6 MB activations to the kernel after every step and
# page-fault them back in on the next (measured on the 2-core EPYC: 1,626 -> 13,020 images/s).
#
#   tools/peer_sweep.sh [--threads "1 2"] METRIC higher|lower -- COMMAND [ARGS...]
#
# METRIC is the name (a sed regular expression) of the `name: value` line of COMMAND's output to
# compare; with --threads, COMMAND gets `--threads T` appended for each T. Prints, as `name: value`:
#   peer_metric           METRIC
#   peer_sweep_<i>_config / peer_sweep_<i>_value   every configuration tried and its figure
#   peer_best_config      e.g. "blas=openblas-openmp malloc=tcmalloc threads=2"
#   peer_best_env         the environment assignments of the best (for `env`), "-" when none
#   peer_best_threads     the thread count of the best ("-" without --threads)
#   peer_best_value       its figure
# Configurations: BLAS from /usr/lib/x86_64-linux-gnu/{openblas-openmp,openblas-pthread,blis-openmp,
# blis-pthread} (whichever are installed; the directory goes first on LD_LIBRARY_PATH, so its
# libblas.so.3 provides sgemm_ whatever update-alternatives selects; OpenBLAS also with its AVX-512
# core types, below), malloc glibc (defaults),
# glibc-fixed (GLIBC_TUNABLES: mmap threshold 32 MiB, trim threshold 1 GiB: freed memory is kept)
# and tcmalloc (libtcmalloc-minimal4, LD_PRELOAD). tools/install_deps.sh --bench installs them.
set -euo pipefail
threads=("")
if [[ "${1:-}" == "--threads" ]]; then
  read -r -a threads <<<"$2"
  shift 2
fi
metric=$1 direction=$2
shift 2
[[ "${1:-}" == "--" ]] && shift
(($# > 0)) || { echo "usage: $0 [--threads \"1 2\"] METRIC higher|lower -- COMMAND [ARGS...]" >&2; exit 2; }

libdir=/usr/lib/x86_64-linux-gnu
# OpenBLAS 0.3.21 takes an AVX-512 Zen for Haswell (AVX2 kernels); forced to an AVX-512 core type
# (OPENBLAS_CORETYPE) its SGEMM is faster there: the MLP peer went from 80,000 to 113,000
# images/s. So on AVX-512 machines each OpenBLAS is also tried as SkylakeX and as Cooperlake.
coretypes=()
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo; then
  coretypes=(SkylakeX)
  grep -qw avx512_bf16 /proc/cpuinfo && coretypes+=(Cooperlake)
fi
blas=()
for b in openblas-openmp openblas-pthread blis-openmp blis-pthread; do
  [[ -f "$libdir/$b/libblas.so.3" ]] || continue
  blas+=("$b")
  if [[ $b == openblas-* ]]; then
    for c in "${coretypes[@]}"; do blas+=("$b:$c"); done
  fi
done
((${#blas[@]})) || { echo "error: no OpenBLAS or BLIS under $libdir (tools/install_deps.sh --bench)" >&2; exit 1; }
mallocs=(glibc glibc-fixed)
[[ -f "$libdir/libtcmalloc_minimal.so.4" ]] && mallocs+=(tcmalloc)

malloc_env() {
  case $1 in
    glibc) ;;
    glibc-fixed) echo "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824" ;;
    tcmalloc) echo "LD_PRELOAD=$libdir/libtcmalloc_minimal.so.4" ;;
  esac
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "peer_metric: $metric"
i=0 best="" best_config="" best_env="" best_threads=""
for entry in "${blas[@]}"; do
  b=${entry%%:*} core=
  [[ $entry == *:* ]] && core=${entry#*:}
  for m in "${mallocs[@]}"; do
    for t in "${threads[@]}"; do
      envs=("LD_LIBRARY_PATH=$libdir/$b${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
      [[ -n "$core" ]] && envs+=("OPENBLAS_CORETYPE=$core")
      e=$(malloc_env "$m")
      [[ -n "$e" ]] && envs+=("$e")
      args=("$@")
      [[ -n "$t" ]] && args+=(--threads "$t")
      config="blas=$b${core:+ coretype=$core} malloc=$m${t:+ threads=$t}"
      i=$((i + 1))
      if ! env "${envs[@]}" "${args[@]}" >"$out" 2>&1; then
        echo "peer_sweep_${i}_config: $config (failed)"
        continue
      fi
      v=$(sed -n "s/^$metric: //p" "$out" | head -n 1)
      echo "peer_sweep_${i}_config: $config"
      echo "peer_sweep_${i}_value: ${v:-none}"
      [[ -z "$v" ]] && continue
      if [[ -z "$best" ]] || awk -v v="$v" -v b="$best" -v d="$direction" 'BEGIN { exit !(d == "higher" ? v > b : v < b) }'; then
        best=$v best_config=$config best_threads=${t:--}
        best_env="${envs[*]}"
      fi
    done
  done
done
[[ -n "$best" ]] || { echo "error: no configuration printed $metric" >&2; exit 1; }
echo "peer_best_config: $best_config"
echo "peer_best_env: $best_env"
echo "peer_best_threads: $best_threads"
echo "peer_best_value: $best"
