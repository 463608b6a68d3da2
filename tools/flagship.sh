#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs the flagship tour: the TF1 tutorial
# graph, maximum-likelihood regression trained in one compiled step, A2C solving CartPole-v1 and
# one epoch of the seed's CNN on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
[[ -f build/build.ninja ]] || meson setup build
ninja -C build examples/tf_tutorial examples/mle_regression examples/cartpole examples/fashion_cnn
echo "== tf_tutorial: a graph, compiled by the C++ compiler"
./build/examples/tf_tutorial
echo "== mle_regression: line and noise by maximum likelihood (gradients + Adam in one step)"
./build/examples/mle_regression
echo "== cartpole: A2C on CartPole-v1 until the last 20 episodes average >= 475"
./build/examples/cartpole --agent a2c --env v1 --seed 1 --print-every 100
echo "== fashion_cnn: the seed's CNN, one epoch on Fashion-MNIST (fit, validation, test with the inference graph)"
./build/examples/fashion_cnn --model cnn --epochs 1
