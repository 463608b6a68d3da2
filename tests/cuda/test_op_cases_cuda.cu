// The test registry (tests/op_cases.hpp) on the CUDA executor: every case, run on the GPU and on
// the CPU with the same feeds, every result compared (forward only: the gradients on CUDA are
// tests/cuda/test_gradients.cpp's, and nvcc needs several GB to build the registry's gradient
// graphs). Compiled once per part with -DOP_CASE_PART=0 (elementwise and sources, in f64 and in
// the f32 pass), 1 (reductions, matmul, layout, indexing, windows) or 2 (composites), so that each
// nvcc TU stays under a minute and 2 GB; the CPU executors they are compared with are built by g++
// in reference_op_cases.cpp, part by part.
#include <deque>
#include <memory>
#include "harness.cuh"
#include "../op_cases.hpp"

#ifndef OP_CASE_PART
#error "compile with -DOP_CASE_PART=0, 1 or 2"
#endif

namespace {

using namespace kiln;
using op_cases::case_group;

// Feeds for every case of `group` (f32: the SIMD pass), from the registry's own input generator.
struct feeds_t {
  std::deque<std::vector<double>> f64;
  std::deque<std::vector<float>> f32;
  std::deque<std::unique_ptr<bool[]>> bools;
  std::deque<std::vector<std::int32_t>> i32;
  std::deque<std::string> names;
  std::vector<feed> feeds;
};

feeds_t feeds_of(case_group group, bool simd) {
  feeds_t f;
  for (std::size_t i = 0; i < op_cases::case_count; ++i) {
    const op_cases::op_case& c = op_cases::cases[i];
    if (!c.is_case() || op_cases::group_of(c.id) != group || (simd && !op_cases::runs_in_f32(c))) continue;
    const op_cases::values v = op_cases::make_inputs(c, (simd ? 2000 : 1000) + i, simd);
    for (int k = 0; k < c.n_inputs; ++k) {
      const op_cases::input_spec& s = c.inputs[std::size_t(k)];
      const dims d = dims::of(simd ? op_cases::simd_shape : s.dims, 1);
      const std::string_view name = f.names.emplace_back(op_cases::input_name(c, k).view());
      const std::vector<double>& x = v[std::size_t(k)];
      if (simd) f.feeds.push_back({name, view(f.f32.emplace_back(x.begin(), x.end()), d)});
      else if (s.type == dtype::f64) f.feeds.push_back({name, view(f.f64.emplace_back(x), d)});
      else if (s.type == dtype::boolean) {
        bool* b = f.bools.emplace_back(new bool[x.size()]).get();
        for (std::size_t j = 0; j < x.size(); ++j) b[j] = x[j] != 0;
        f.feeds.push_back({name, view(static_cast<const bool*>(b), d)});
      } else {
        f.feeds.push_back({name, view(f.i32.emplace_back(x.begin(), x.end()), d)});
      }
    }
  }
  return f;
}

template <case_group G, dtype T> void compare(const char* reference_name, double tol) {
  const feeds_t f = feeds_of(G, T == dtype::f32);
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
