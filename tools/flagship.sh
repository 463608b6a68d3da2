#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs the flagship example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
[[ -f build/build.ninja ]] || meson setup build
ninja -C build examples/tf_tutorial
./build/examples/tf_tutorial
