// Runs without a GPU: evaluates the expression types and argument structs that the CUDA
// executor generates for elementwise groups on the host (value_at is __host__ __device__) and
// compares them with the CPU backend. This checks the translation from the node array
// (leaves, broadcasting strides, collapsed dims, immediates, iota) on any machine. Window groups
// on fed inputs likewise run their kernels' element functions (window_at, backends/cuda/window.cuh)
// on the host. Groups that read another group's result run on the host copy of that result, and
// every output must be compared (check_model fails otherwise, unless a case names the output and
// says why the host cannot compute it).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "expression_host.cuh"
#include "window_models.hpp"

using namespace kiln;
using cuda_tests::sample;

#define KILN_EMULATE(model, ...) cuda_tests::check_model(#model, cuda_models::model, __VA_ARGS__)

TEST_CASE("cuda.expression_host.broadcast") {
  const auto x = sample(5 * 4 * 3, 1), row = sample(3, 2), col = sample(4, 3);
  // 'lead' multiplies by a reduce_sum, a reduction group the host does not emulate (its GPU run
  // is in the cuda executable); every other output is compared
  KILN_EMULATE(broadcast_chain, {{"x", view(x, {5, 4, 3})}, {"row", view(row, {3})}, {"col", view(col, {4, 1})}}, 1e-6,
               {.not_emulated = {"lead"}});
}

TEST_CASE("cuda.expression_host.unary_ops") {
  const auto x = sample(7 * 16, 4, -3, 3);
  KILN_EMULATE(unary_ops, {{"x", view(x, {7, 16})}}, 1e-6);
}

TEST_CASE("cuda.expression_host.binary_ops") {
  const auto a = sample(9 * 8, 5, -2, 2, 0.25), b = sample(8, 6, -2, 2, 0.25);
  KILN_EMULATE(binary_ops, {{"a", view(a, {9, 8})}, {"b", view(b, {8})}}, 1e-6);
}

TEST_CASE("cuda.expression_host.integer_ops") {
  const auto a = sample<std::int32_t>(4 * 6, 7, -50, 50, 1);
  const auto b = sample<std::int64_t>(6, 8, -1000, 1000, 1);
  KILN_EMULATE(integer_ops, {{"a", view(a, {4, 6})}, {"b", view(b, {6})}}, 0);
}

TEST_CASE("cuda.expression_host.immediates") {
  const auto x = sample(3 * 5, 9);
  KILN_EMULATE(immediates, {{"x", view(x, {3, 5})}}, 0);
}

// The window kernels' index arithmetic (padding on either side, gaps between windows, clipped
// and non-square windows) and first-maximum rule (x on a coarse grid: ties in most windows),
// bit for bit against the CPU kernels.
TEST_CASE("cuda.expression_host.window_ops") {
  for (std::int64_t B : {1, 3}) {
    CAPTURE(B);
    const auto f = cuda_tests::placeholder_feeds<std::remove_cvref_t<decltype(cuda_models::window_direct)>>(B, 20 + std::uint64_t(B), {"x"});
    cuda_tests::check_model("window_direct", cuda_models::window_direct, f.span(), 0);
  }
}
