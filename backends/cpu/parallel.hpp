// When to use the thread pool: small work runs inline on the calling thread (no task overhead for
// batch-1 inference); large work is split into chunks whose size depends only on the problem,
// so results never depend on the number of threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include "../../runtime/checked.hpp"

namespace kiln::cpu_detail {

inline constexpr std::int64_t inline_work_limit = 1 << 15;  // element x cost units
inline constexpr std::int64_t chunk_work = 1 << 16;

// Items per chunk. Light items (elements of a loop) come in multiples of 64 so that every chunk
// but the last starts on a SIMD boundary; heavy items (GEMM row blocks, whole rows of a
// reduction) may be one per chunk, so that a few of them still spread over the threads.
constexpr std::int64_t grain_for(std::int64_t cost_per_item) {
  const std::int64_t g = chunk_work / (cost_per_item > 0 ? cost_per_item : 1);
  if (g < 64) return std::max<std::int64_t>(g, 1);
  return (g + 63) / 64 * 64;
}

using chunk_body = void (*)(void* body, std::int64_t begin, std::int64_t end);

// The one place that instantiates oneTBB's parallel_for: every loop of every graph goes through
// this non-template function, so oneTBB's task machinery is compiled once, not once per group.
inline void run_chunks(std::int64_t n, std::int64_t grain, chunk_body fn, void* body) {
  const std::int64_t chunks = n / grain + (n % grain != 0);  // n + grain - 1 could overflow
  oneapi::tbb::parallel_for(
      oneapi::tbb::blocked_range<std::int64_t>(0, chunks, 1),
      [&](const oneapi::tbb::blocked_range<std::int64_t>& r) {
        for (std::int64_t c = r.begin(); c != r.end(); ++c) fn(body, c * grain, std::min(n, (c + 1) * grain));
      },
      oneapi::tbb::auto_partitioner());
}

// f(begin, end) over [0, n), inline when cheap or when it is a single chunk, otherwise over
// fixed-size chunks on oneTBB. f is always called with whole chunks [c * grain, (c + 1) * grain)
// (the last one cut at n), whatever the number of threads; oneTBB only decides which thread runs
// which chunks, and groups neighbouring chunks into one task (auto_partitioner), so that the
// per-task cost stays small against the work even with one thread.
template <class F> void parallel_range(std::int64_t n, std::int64_t cost_per_item, F&& f) {
  if (n <= 0) return;
  const std::int64_t grain = grain_for(cost_per_item);
  if (n <= grain || saturating_mul(n, cost_per_item) <= inline_work_limit) {
    f(std::int64_t(0), n);
    return;
  }
  using body_t = std::remove_reference_t<F>;
  run_chunks(n, grain, [](void* body, std::int64_t b, std::int64_t e) { (*static_cast<body_t*>(body))(b, e); },
             const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace kiln::cpu_detail
