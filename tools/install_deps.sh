#!/usr/bin/env bash
# Installs the Debian 12 packages kiln needs (only the missing ones). Run as root.
#   --bench   also the LibTorch/PyTorch peers used by bench/
set -euo pipefail
packages=(g++ clang libclang-rt-14-dev meson ninja-build pkg-config cmake libeigen3-dev libtbb-dev doctest-dev libcli11-dev zlib1g-dev dataset-fashion-mnist time python3)
if [[ "${1:-}" == "--bench" ]]; then
  # The peers' configurations tools/peer_sweep.sh tries: OpenBLAS (OpenMP, pthreads), BLIS, tcmalloc.
  packages+=(libtorch-dev libopenblas0-openmp libopenblas0-pthread libblis4-openmp libblis4-pthread libtcmalloc-minimal4 python3-torch)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
