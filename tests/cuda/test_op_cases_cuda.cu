// The test registry (tests/op_cases.hpp) on the CUDA executor: every case, run on the GPU and on
// the CPU with the same feeds, every result compared (forward only: the gradients on CUDA are
// tests/cuda/test_gradients.cpp's, and nvcc needs several GB to build the registry's gradient
// graphs). Compiled once per part with -DOP_CASE_PART=0 (elementwise and sources, in f64 and in
// the f32 pass), 1 (reductions, matmul, layout, indexing, windows) or 2 (composites), so that each
// nvcc TU stays under a minute and 2 GB; the CPU executors they are compared with are built by g++
// in reference_op_cases.cpp, part by part.
#include "harness.cuh"
#include "op_case_feeds.hpp"

#ifndef OP_CASE_PART
#error "compile with -DOP_CASE_PART=0, 1 or 2"
#endif

namespace {

using namespace kiln;
using op_cases::case_group;

template <case_group G, dtype T> void compare(const char* reference_name, double tol) {
  const cuda_tests::op_case_feeds f = cuda_tests::op_case_feeds_of(G, T == dtype::f32);
  auto gpu = compile<kiln::cuda>(op_cases::model<G, T, false>{});
  cuda_tests::reference_session cpu(reference_name);
  const std::span<const feed> feeds(f.feeds);
  cuda_tests::compare_outputs(gpu.run(feeds), cpu.run(feeds), {tol}, reference_name);
}

}  // namespace

#if OP_CASE_PART == 0
TEST_CASE("cuda.op_cases.elementwise_and_sources") { compare<case_group::elementwise, dtype::f64>("op_cases_elementwise", 1e-12); }
TEST_CASE("cuda.op_cases.elementwise_f32") { compare<case_group::elementwise, dtype::f32>("op_cases_elementwise_f32", 1e-5); }
#elif OP_CASE_PART == 1
TEST_CASE("cuda.op_cases.reductions_matmul_layout_indexing") { compare<case_group::structural, dtype::f64>("op_cases_structural", 1e-12); }
TEST_CASE("cuda.op_cases.windows") { compare<case_group::window, dtype::f64>("op_cases_window", 1e-12); }
#else
TEST_CASE("cuda.op_cases.convolutions") { compare<case_group::convolution, dtype::f64>("op_cases_convolution", 1e-12); }
TEST_CASE("cuda.op_cases.composites") { compare<case_group::composite, dtype::f64>("op_cases_composite", 1e-12); }
#endif
