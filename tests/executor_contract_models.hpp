// Models of the executor-contract tests, shared by the CPU side (tests/test_runtime.cpp, through
// the mirrored CPU executor of tests/mirrored_executor.hpp) and the GPU side
// (tests/cuda/test_executor.cu), so both check the same variable bookkeeping on the same graphs.
#pragma once
#include <doctest/doctest.h>
#include <cstdint>
#include <vector>
#include "graph/program.hpp"
#include "ops/elementwise.hpp"
#include "ops/indexing.hpp"
#include "ops/reduce.hpp"
#include "ops/state.hpp"
#include "runtime/error.hpp"
#include "runtime/view.hpp"

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

// A gather, then assigns that depend on it: with a bad index the run throws and neither counter
// moves (on the CPU the gather throws before the assigns; on CUDA the assign kernels test the
// gather's fault flag).
constexpr auto gather_then_assign = [] {
  graph g;
  tensor table = g.variable("table", f32, {4, 2}, init::arange(0));
  tensor ids = g.placeholder("ids", i32, {batch});
  tensor rows = gather(table, ids);
  tensor count = g.variable("count", i64, {}, init::zeros());
  tensor total = g.variable("total", f32, {}, init::zeros());
  g.output("rows", rows);
  g.output("count", assign_add(count, g.scalar(1, i64)));
  g.output("total", assign_add(total, reduce_sum(rows)));
  return g;
};

// The same expectations for every backend's executor of gather_then_assign.
template <class Executor> void check_gather_fault_stops_assigns(Executor& ex) {
  const std::vector<std::int32_t> bad{1, 4}, good{1, 3};
  CHECK_THROWS_WITH_AS(ex.run({{"ids", view(bad, {2})}}), doctest::Contains("index 4 is out of range [0, 4)"), kiln::error);
  CHECK(ex.template variable<std::int64_t>("count").item() == 0);
  CHECK(ex.template variable<float>("total").item() == 0);
  const auto& out = ex.run({{"ids", view(good, {2})}});
  CHECK(out.template get<std::int64_t>("count").item() == 1);
  CHECK(out.template get<float>("total").item() == 2 + 3 + 6 + 7);
}

// An assign declared (and so scheduled) before a gather whose indices are computed in the graph:
// the gather can only fault after the assign ran, so a faulting run must restore the variable
// (runtime/binding.hpp's rollback_set).
constexpr auto assign_then_computed_gather = [] {
  graph g;
  tensor count = g.variable("count", i64, {}, init::zeros(), false);
  tensor x = g.placeholder("x", f32, {batch});
  tensor total = g.variable("total", f32, {}, init::zeros(), false);
  g.output("count", assign_add(count, g.scalar(1, i64)));
  g.output("total", assign_add(total, reduce_sum(x)));
  tensor table = g.variable("table", f32, {4, 2}, init::arange(0));
  tensor ids = g.placeholder("ids", i32, {batch});
  g.output("rows", gather(table, ids + ids));
  return g;
};

// The same expectations for every backend's executor of assign_then_computed_gather.
template <class Executor> void check_computed_index_fault_rolls_back(Executor& ex) {
  const std::vector<float> x{1, 2, 3};
  const std::vector<std::int32_t> good{0, 1, 1}, bad{0, 2, 1};  // doubled: 4 is out of range
  ex.run({{"x", view(x, {3})}, {"ids", view(good, {3})}});
  CHECK_THROWS_WITH_AS(ex.run({{"x", view(x, {3})}, {"ids", view(bad, {3})}}), doctest::Contains("index 4 is out of range [0, 4)"), kiln::error);
  CHECK(ex.template variable<std::int64_t>("count").item() == 1);
  CHECK(ex.template variable<float>("total").item() == 6);
  // and a good run afterwards continues from the restored values
  const auto& out = ex.run({{"x", view(x, {3})}, {"ids", view(good, {3})}});
  CHECK(out.template get<std::int64_t>("count").item() == 2);
  CHECK(out.template get<float>("total").item() == 12);
  CHECK(out.template get<float>("rows").to_vector() == std::vector<float>{0, 1, 4, 5, 4, 5});
}

}  // namespace contract_models
