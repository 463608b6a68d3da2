// The window ops on the GPU against the CPU backend: conv2d (im2col + matmul, its gradients col2im
// and the row-folded weight contraction), max_pool2d (max_pool, max_pool_grad, max_pool_select)
// and second order through all of them, at batch sizes 1, 3 and 64 on one executor each (so the
// arena is re-planned between them).
#include <string>
#include <string_view>
#include "harness.cuh"
#include "window_models.hpp"

using namespace kiln;

namespace {

template <class Model>
void compare_at_batches(const char* name, Model, std::initializer_list<std::int64_t> batches, cuda_tests::tolerance t,
                        std::initializer_list<std::string_view> ties = {}, cuda_options options = {}) {
  auto gpu = compile<cuda>(Model{}, nullptr, options);
  cuda_tests::reference_session cpu(name);
  for (std::int64_t B : batches) {
    CAPTURE(B);
    const auto f = cuda_tests::placeholder_feeds<Model>(B, 100 + std::uint64_t(B), ties);
    cuda_tests::compare_outputs(gpu.run(f.span()), cpu.run(f.span()), t, std::string(name) + " batch " + std::to_string(B));
  }
}

}  // namespace

// Only selections and sums in the CPU kernels' order: bit for bit, ties included.
TEST_CASE("cuda.window.ops") {
  compare_at_batches("window_direct", cuda_models::window_direct, {1, 3, 64}, {0.0, false}, {"x"});
}

// The forward values are exact on both backends; dw sums up to 64·42 products per entry in
// different orders (cuBLAS vs Eigen), hence a tolerance relative to the largest entry.
TEST_CASE("cuda.window.conv2d") {
  compare_at_batches("conv_windows", cuda_models::conv_windows, {1, 3, 64}, {1e-5, true});
}

// Max pooling only selects and adds: bit for bit.
TEST_CASE("cuda.window.max_pool2d") {
  compare_at_batches("pool_windows", cuda_models::pool_windows, {1, 3, 64}, {0.0, false}, {"x"});
}

TEST_CASE("cuda.window.second_order") {
  compare_at_batches("window_second_order", cuda_models::window_second_order, {1, 3, 64}, {1e-5, true});
}

// The same kernels replayed from captured CUDA graphs (one capture per batch size).
TEST_CASE("cuda.window.graphs") {
  compare_at_batches("conv_windows", cuda_models::conv_windows, {3, 3, 5, 3}, {1e-5, true}, {}, cuda_options{.use_graphs = true});
  compare_at_batches("pool_windows", cuda_models::pool_windows, {2, 2, 7}, {0.0, false}, {"x"}, cuda_options{.use_graphs = true});
}

// No images: no window launches, and the weight gradient of no rows is zeros (an empty GEMM).
TEST_CASE("cuda.window.empty_batch") {
  compare_at_batches("conv_windows", cuda_models::conv_windows, {2, 0, 2}, {1e-5, true});
  compare_at_batches("pool_windows", cuda_models::pool_windows, {0, 1}, {0.0, false}, {"x"});
}
