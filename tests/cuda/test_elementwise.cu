#include "harness.cuh"

using namespace kiln;
using cuda_tests::sample;

TEST_CASE("cuda.elementwise.broadcast") {
  const auto x = sample(5 * 4 * 3, 1), row = sample(3, 2), col = sample(4, 3);
  KILN_COMPARE(broadcast_chain, {{"x", view(x, {5, 4, 3})}, {"row", view(row, {3})}, {"col", view(col, {4, 1})}}, {1e-5});
}

TEST_CASE("cuda.elementwise.unary_ops") {
  const auto x = sample(7 * 16, 4, -3, 3);
  KILN_COMPARE(unary_ops, {{"x", view(x, {7, 16})}}, {1e-5});
}

TEST_CASE("cuda.elementwise.binary_ops") {
  const auto a = sample(9 * 8, 5, -2, 2, 0.25), b = sample(8, 6, -2, 2, 0.25);
  KILN_COMPARE(binary_ops, {{"a", view(a, {9, 8})}, {"b", view(b, {8})}}, {1e-5});
}

TEST_CASE("cuda.elementwise.integer_ops") {
  const auto a = sample<std::int32_t>(4 * 6, 7, -50, 50, 1);
  const auto b = sample<std::int64_t>(6, 8, -1000, 1000, 1);
  KILN_COMPARE(integer_ops, {{"a", view(a, {4, 6})}, {"b", view(b, {6})}});
}

TEST_CASE("cuda.elementwise.immediates") {
  const auto x = sample(3 * 5, 9);
  KILN_COMPARE(immediates, {{"x", view(x, {3, 5})}});
}

TEST_CASE("cuda.elementwise.large_batch") {
  // Enough elements for many blocks of the grid-stride loop.
  const auto x = sample(100003 * 4 * 3, 10), row = sample(3, 11), col = sample(4, 12);
  KILN_COMPARE(broadcast_chain, {{"x", view(x, {100003, 4, 3})}, {"row", view(row, {3})}, {"col", view(col, {4, 1})}}, {1e-5, true});
}
