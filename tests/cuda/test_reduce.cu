#include "harness.cuh"

using namespace kiln;
using cuda_tests::sample;

TEST_CASE("cuda.reduce.axes") {
  for (std::int64_t b : {1, 6, 33}) {
    CAPTURE(b);
    const auto x = sample(std::size_t(b) * 5 * 7, 20 + std::uint64_t(b));
    KILN_COMPARE(reductions, {{"x", view(x, {b, 5, 7})}}, {1e-5, true});
  }
}

TEST_CASE("cuda.reduce.integers") {
  const auto x = sample<std::int32_t>(11 * 9, 30, -100, 100, 1);
  KILN_COMPARE(integer_reductions, {{"x", view(x, {11, 9})}});
}

TEST_CASE("cuda.reduce.long_axes") {
  const auto rows = sample(2 * 100000, 31), cols = sample(40000 * 3, 32);
  KILN_COMPARE(long_reductions, {{"rows", view(rows, {2, 100000})}, {"cols", view(cols, {40000, 3})}}, {1e-5, true});
}

TEST_CASE("cuda.reduce.deterministic") {
  const auto rows = sample(2 * 100000, 33), cols = sample(40000 * 3, 34);
  auto gpu = compile<cuda>(cuda_models::long_reductions);
  const std::initializer_list<feed> feeds{{"rows", view(rows, {2, 100000})}, {"cols", view(cols, {40000, 3})}};
  const auto first = cuda_tests::copy_value(gpu.run(feeds)["all_sum"]);
  for (int r = 0; r < 5; ++r) CHECK(cuda_tests::copy_value(gpu.run(feeds)["all_sum"]).data == first.data);
}
