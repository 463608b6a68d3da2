// Shared helpers of the CUDA tests: deterministic feed data, normalized comparison, and the
// run-on-both-backends driver.
#pragma once
#include <doctest/doctest.h>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "backends/cuda/executor.cuh"
#include "models.hpp"
#include "reference.hpp"

namespace cuda_tests {

// Values in [lo, hi) on a grid of `quantum` (so ties, equalities and exact casts do happen).
template <class T = float>
std::vector<T> sample(std::size_t n, std::uint64_t seed, double lo = -2, double hi = 2, double quantum = 1.0 / 64) {
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double u = kiln::uniform01(seed, i);
    double x = lo + (hi - lo) * u;
    if (quantum > 0) x = std::floor(x / quantum) * quantum;
    v[i] = static_cast<T>(x);
  }
  return v;
}

// One f32 feed per placeholder of Model at batch B, from sample() with consecutive seeds: on a
// grid of 1/64 in [-2, 2), or of `tie_quantum` for the placeholders named in `ties` (coarse
// enough that equal values meet in one window or row).
struct model_feeds {
  std::vector<std::vector<float>> data;
  std::vector<kiln::feed> feeds;
  std::span<const kiln::feed> span() const { return feeds; }
};

template <class Model>
model_feeds placeholder_feeds(std::int64_t B, std::uint64_t seed, std::initializer_list<std::string_view> ties = {}, double tie_quantum = 0.25) {
  using P = kiln::program<Model>;
  model_feeds f;
  f.data.reserve(P::N);
  for (const kiln::node& n : P::nodes) {
    if (n.kind != kiln::op::placeholder) continue;
    REQUIRE(n.type == kiln::f32);
    const kiln::dims d = kiln::dims::of(n.out, B);
    bool tied = false;
    for (std::string_view t : ties) tied = tied || t == n.name.view();
    f.data.push_back(sample(std::size_t(d.elements()), seed++, -2, 2, tied ? tie_quantum : 1.0 / 64));
    f.feeds.push_back({n.name.view(), kiln::view(f.data.back(), d)});
  }
  return f;
}

// Elementwise error normalized by max(1, |expected|), or with `whole_tensor` by the largest
// expected magnitude (sums and products whose individual entries may cancel to ~0).
inline void check_close(const host_value& got, const host_value& want, double tol, bool whole_tensor, const std::string& what) {
  INFO(what);
  REQUIRE(got.type == want.type);
  REQUIRE(got.shape == want.shape);
  double scale = 1;
  if (whole_tensor)
    for (double w : want.data) scale = std::max(scale, std::fabs(w));
  double worst = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < want.data.size(); ++i) {
    const double g = got.data[i], w = want.data[i];
    double err;
    if (std::isnan(w) || std::isnan(g)) err = std::isnan(w) && std::isnan(g) ? 0 : INFINITY;
    else if (std::isinf(w) || std::isinf(g)) err = g == w ? 0 : INFINITY;
    else err = std::fabs(g - w) / std::max(scale, std::fabs(w));
    if (!(err <= worst)) {
      worst = err;
      worst_at = i;
    }
  }
  const bool exact = !kiln::is_floating(want.type);
  INFO("worst normalized error " << worst << " at flat index " << worst_at << ": got "
       << (want.data.empty() ? 0.0 : got.data[worst_at]) << ", want " << (want.data.empty() ? 0.0 : want.data[worst_at]));
  CHECK(worst <= (exact ? 0.0 : tol));
}

struct tolerance {
  double tol = 1e-5;
  bool whole_tensor = false;
};

template <std::size_t NO>
void compare_outputs(const kiln::run_outputs<NO>& gpu, const host_values& cpu, tolerance t, const std::string& context) {
  REQUIRE(cpu.size() == NO);
  for (std::size_t i = 0; i < NO; ++i) {
    const auto it = cpu.find(gpu.names[i]);
    REQUIRE(it != cpu.end());
    check_close(copy_value(gpu.values[i]), it->second, t.tol, t.whole_tensor, context + " output '" + std::string(gpu.names[i]) + "'");
  }
}

// Runs `Model` on the GPU and on the CPU with the same feeds, `runs` times, comparing every
// output of every run (state carried by variables must evolve identically).
template <class Model>
void compare_with_cpu(const char* name, Model, std::initializer_list<kiln::feed> feeds, tolerance t = {}, int runs = 1,
                      kiln::cuda_options options = {}) {
  auto gpu = kiln::compile<kiln::cuda>(Model{}, nullptr, options);
  reference_session cpu(name);
  for (int r = 0; r < runs; ++r) {
    const auto& got = gpu.run(feeds);
    compare_outputs(got, cpu.run(feeds), t, std::string(name) + " run " + std::to_string(r));
  }
}

}  // namespace cuda_tests

#define KILN_COMPARE(model, ...) ::cuda_tests::compare_with_cpu(#model, cuda_models::model, __VA_ARGS__)
