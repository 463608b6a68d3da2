#!/usr/bin/env bash
# Measures what the two stack pieces that kiln does not use would cost, for the README's
# "Dependencies and why":
#  - Boost.Hana: N compile-time name lookups in a hana::map of N names versus a constexpr
#    std::array scanned by a constexpr function (what kiln does over its node table);
#  - Thrust: the nvcc compile time of a CUDA TU with one thrust::sort and one inclusive_scan
#    versus the same TU without them (skipped without nvcc).
# Prints `name: value` lines. Needs libboost-dev for the Hana half (installed on demand).
set -euo pipefail
[[ -f /usr/include/boost/hana.hpp ]] ||
  { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq --no-install-recommends libboost-dev >/dev/null; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() {  # gen N KIND
  python3 - "$1" "$2" <<'PY'
import sys
n, kind = int(sys.argv[1]), sys.argv[2]
names = [f"layer{i}/kernel" for i in range(n)]
if kind == "hana":
    print('#include <boost/hana.hpp>\nnamespace hana = boost::hana;')
    print('constexpr auto table = hana::make_map(')
    print(',\n'.join(f'  hana::make_pair(BOOST_HANA_STRING("{s}"), hana::int_c<{i}>)' for i, s in enumerate(names)))
    print(');')
    for i, s in enumerate(names):
        print(f'static_assert(hana::at_key(table, BOOST_HANA_STRING("{s}")) == hana::int_c<{i}>);')
else:
    print('#include <array>\n#include <string_view>')
    print(f'constexpr std::array<std::string_view, {n}> table = {{')
    print(',\n'.join(f'  "{s}"' for s in names))
    print('};')
    print('constexpr int index_of(std::string_view s) { for (int i = 0; i < int(table.size()); ++i) if (table[i] == s) return i; return -1; }')
    for i, s in enumerate(names):
        print(f'static_assert(index_of("{s}") == {i});')
print('int main() {}')
PY
}
measure() {  # measure LABEL COMMAND...: prints LABEL_s and LABEL_mb
  /usr/bin/time -f "%e %M" -o "$tmp/t" "${@:2}" >/dev/null 2>&1
  read -r s kb <"$tmp/t"
  echo "$1_s: $s"
  echo "$1_mb: $((kb / 1024))"
}
for n in 64 256; do
  for kind in array hana; do
    gen "$n" "$kind" >"$tmp/$kind$n.cpp"
    measure "names_${n}_${kind}" g++ -std=c++20 -O2 -c "$tmp/$kind$n.cpp" -o "$tmp/o"
  done
done
nvcc=/usr/local/cuda/bin/nvcc
if [[ -x $nvcc ]]; then
  kernel='__global__ void k(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] *= 2; }'
  printf '#include <cuda_runtime.h>\n%s\nint main() { k<<<1, 32>>>(nullptr, 0); }\n' "$kernel" >"$tmp/plain.cu"
  printf '#include <cuda_runtime.h>\n#include <thrust/device_ptr.h>\n#include <thrust/sort.h>\n#include <thrust/scan.h>\n%s\nint main() { k<<<1, 32>>>(nullptr, 0); thrust::device_ptr<float> p(nullptr); thrust::sort(p, p); thrust::inclusive_scan(p, p, p); }\n' "$kernel" >"$tmp/thrust.cu"
  measure cuda_tu_plain "$nvcc" -std=c++20 -O2 -arch=sm_90 -c "$tmp/plain.cu" -o "$tmp/o"
  measure cuda_tu_thrust_sort_scan "$nvcc" -std=c++20 -O2 -arch=sm_90 -c "$tmp/thrust.cu" -o "$tmp/o"
else
  echo "cuda_tu: skipped (no nvcc)"
fi
