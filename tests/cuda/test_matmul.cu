#include "harness.cuh"

using namespace kiln;
using cuda_tests::sample;

TEST_CASE("cuda.matmul.transposes") {
  const auto a = sample(13 * 9, 40), at = sample(9 * 13, 41), b = sample(9 * 11, 42), bt = sample(11 * 9, 43);
  KILN_COMPARE(matmul_transposes,
               {{"a", view(a, {13, 9})}, {"at", view(at, {9, 13})}, {"b", view(b, {9, 11})}, {"bt", view(bt, {11, 9})}}, {1e-5, true});
}

TEST_CASE("cuda.matmul.batched") {
  for (std::int64_t n : {1, 4}) {
    CAPTURE(n);
    const auto a = sample(std::size_t(n) * 30, 44), b = sample(std::size_t(n) * 20, 45), bt = sample(std::size_t(n) * 20, 46);
    KILN_COMPARE(matmul_batched, {{"a", view(a, {n, 6, 5})}, {"b", view(b, {n, 5, 4})}, {"bt", view(bt, {n, 4, 5})}}, {1e-5, true});
  }
}

TEST_CASE("cuda.matmul.epilogue") {
  for (std::int64_t n : {1, 3, 257}) {
    CAPTURE(n);
    const auto x = sample(std::size_t(n) * 32, 47);
    KILN_COMPARE(dense_layers, {{"x", view(x, {n, 32})}}, {1e-5, true});
  }
}

TEST_CASE("cuda.matmul.tf32_option") {
  // TF32 trades mantissa bits for speed: only a loose agreement is expected.
  const auto x = sample(64 * 32, 48);
  KILN_COMPARE(dense_layers, {{"x", view(x, {64, 32})}}, {2e-2, true}, 1, cuda_options{.allow_tf32 = true});
}
