// Feeds for the cases of one group of the test registry (tests/op_cases.hpp), from the registry's
// own input generator, for the CUDA tests (test_op_cases_cuda.cu, test_expression_host.cu).
#pragma once
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include "../op_cases.hpp"
#include "runtime/view.hpp"

namespace cuda_tests {

// f32: the SIMD pass (runs_in_f32 cases over simd_shape).
struct op_case_feeds {
  std::deque<std::vector<double>> f64;
  std::deque<std::vector<float>> f32;
  std::deque<std::unique_ptr<bool[]>> bools;
  std::deque<std::vector<std::int32_t>> i32;
  std::deque<std::string> names;
  std::vector<kiln::feed> feeds;
  std::span<const kiln::feed> span() const { return feeds; }
};

inline op_case_feeds op_case_feeds_of(op_cases::case_group group, bool simd) {
  op_case_feeds f;
  for (std::size_t i = 0; i < op_cases::case_count; ++i) {
    const op_cases::op_case& c = op_cases::cases[i];
    if (!c.is_case() || op_cases::group_of(c.id) != group || (simd && !op_cases::runs_in_f32(c))) continue;
    const op_cases::values v = op_cases::make_inputs(c, (simd ? 2000 : 1000) + i, simd);
    for (int k = 0; k < c.n_inputs; ++k) {
      const op_cases::input_spec& s = c.inputs[std::size_t(k)];
      const kiln::dims d = kiln::dims::of(simd ? op_cases::simd_shape : s.dims, 1);
      const std::string_view name = f.names.emplace_back(op_cases::input_name(c, k).view());
      const std::vector<double>& x = v[std::size_t(k)];
      if (simd) f.feeds.push_back({name, kiln::view(f.f32.emplace_back(x.begin(), x.end()), d)});
      else if (s.type == kiln::dtype::f64) f.feeds.push_back({name, kiln::view(f.f64.emplace_back(x), d)});
      else if (s.type == kiln::dtype::boolean) {
        bool* b = f.bools.emplace_back(new bool[x.size()]).get();
        for (std::size_t j = 0; j < x.size(); ++j) b[j] = x[j] != 0;
        f.feeds.push_back({name, kiln::view(static_cast<const bool*>(b), d)});
      } else {
        f.feeds.push_back({name, kiln::view(f.i32.emplace_back(x.begin(), x.end()), d)});
      }
    }
  }
  return f;
}

}  // namespace cuda_tests
