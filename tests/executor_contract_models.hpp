// Models of the executor-contract tests, shared by the CPU side (tests/test_runtime.cpp, through
// the mirrored CPU executor of tests/mirrored_executor.hpp) and the GPU side
// (tests/cuda/test_executor.cu), so both check the same variable bookkeeping on the same graphs.
#pragma once
#include "graph/program.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"
#include "ops/state.hpp"

namespace contract_models {
using namespace kiln;

// w -= lr * x per run; lr a variable the host sets between runs (a learning-rate schedule).
constexpr auto mirror_train = [] {
  graph g;
  tensor w = g.variable("w", f64, {2}, init::constant(1.0));
  tensor lr = g.variable("lr", f64, {}, init::constant(0.5), /*trainable*/ false);
  tensor x = g.placeholder("x", f64, {2});
  g.output("w", assign(w, w - lr * x));
  return g;
};
// reads the same w: an executor sharing the store
constexpr auto mirror_infer = [] {
  graph g;
  tensor w = g.variable("w", f64, {2}, init::constant(1.0));
  tensor x = g.placeholder("x", f64, {2});
  g.output("y", reduce_sum(w * x));
  return g;
};

}  // namespace contract_models
