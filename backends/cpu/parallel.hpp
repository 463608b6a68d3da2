// When to use the thread pool: small work runs inline on the calling thread (no task overhead for
// batch-1 inference); large work is split into chunks whose size depends only on the problem,
// so results never depend on the number of threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

namespace kiln::cpu_detail {

inline constexpr std::int64_t inline_work_limit = 1 << 15;  // element x cost units
inline constexpr std::int64_t chunk_work = 1 << 16;

constexpr std::int64_t grain_for(std::int64_t cost_per_item) {
  const std::int64_t g = chunk_work / (cost_per_item > 0 ? cost_per_item : 1);
  return (std::max<std::int64_t>(g, 256) + 63) / 64 * 64;
}

// f(begin, end) over [0, n), inline when cheap, otherwise in fixed-size chunks on oneTBB.
template <class F> void parallel_range(std::int64_t n, std::int64_t cost_per_item, F&& f) {
  if (n <= 0) return;
  if (n * cost_per_item <= inline_work_limit) {
    f(std::int64_t(0), n);
    return;
  }
  const std::int64_t grain = grain_for(cost_per_item);
  const std::int64_t chunks = (n + grain - 1) / grain;
  oneapi::tbb::parallel_for(
      oneapi::tbb::blocked_range<std::int64_t>(0, chunks, 1),
      [&](const oneapi::tbb::blocked_range<std::int64_t>& r) {
        for (std::int64_t c = r.begin(); c != r.end(); ++c) f(c * grain, std::min(n, (c + 1) * grain));
      },
      oneapi::tbb::simple_partitioner());
}

}  // namespace kiln::cpu_detail
