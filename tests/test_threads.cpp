// Results must not depend on the number of threads: chunking follows the problem size only and
// partial results are combined in a fixed order.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_util.hpp"
#include <cstring>
#include <oneapi/tbb/global_control.h>

using namespace kiln;

namespace {

constexpr auto mixed = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 256});
  tensor w = g.variable("w", f32, {256, 192}, init::glorot_uniform(7));
  tensor b = g.variable("b", f32, {192}, init::normal(0, 0.1, 3));
  tensor h = tanh(matmul(x, w) + b);
  g.output("h", h);
  g.output("total", reduce_sum(exp(x * 0.01) * x));       // one long parallel reduction
  g.output("columns", reduce_mean(h * h, {0}));           // strided reduction over the batch
  g.output("rows", reduce_max(sigmoid(x) - x, {1}));      // contiguous row reduction
  return g;
};

template <class T> std::vector<T> copy_of(tensor_view<const T> v) { return v.to_vector(); }

struct results {
  std::vector<float> h, total, columns, rows;
};

results run_with_threads(int threads, const std::vector<float>& x, std::int64_t rows) {
  oneapi::tbb::global_control limit(oneapi::tbb::global_control::max_allowed_parallelism, std::size_t(threads));
  auto exe = compile<cpu>(mixed);
  auto& out = exe.run({{"x", view(x, {rows, 256})}});
  return {copy_of(out.get<float>("h")), copy_of(out.get<float>("total")), copy_of(out.get<float>("columns")),
          copy_of(out.get<float>("rows"))};
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("determinism.thread_count.one_vs_two_vs_four") {
  const std::int64_t rows = 4096;  // 1M inputs: every group runs on the thread pool
  const auto x = kt::uniform<float>(std::size_t(rows * 256), -3, 3, 11);
  const results one = run_with_threads(1, x, rows);
  const results two = run_with_threads(2, x, rows);
  const results four = run_with_threads(4, x, rows);
  CHECK(bitwise_equal(one.h, two.h));
  CHECK(bitwise_equal(one.total, two.total));
  CHECK(bitwise_equal(one.columns, two.columns));
  CHECK(bitwise_equal(one.rows, two.rows));
  CHECK(bitwise_equal(one.h, four.h));
  CHECK(bitwise_equal(one.total, four.total));
  CHECK(bitwise_equal(one.columns, four.columns));
  CHECK(bitwise_equal(one.rows, four.rows));

  // and the values are right: the long reduction against a double-precision loop
  double total = 0;
  for (float v : x) total += std::exp(double(v) * 0.01) * double(v);
  CHECK(kt::close(one.total[0], total, 1e-4, 1e-2));
}
