// Small timing helpers shared by the benchmarks: medians of repeated measurements, printed as
// `name: value` lines.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>
#include <oneapi/tbb/info.h>

namespace bench {

using clock = std::chrono::steady_clock;

template <class T> inline void do_not_optimize(const T& v) { asm volatile("" : : "r,m"(v) : "memory"); }

inline double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// Median over `samples` measurements of the seconds one call of f takes; each measurement times
// `inner` back-to-back calls (so the clock's own cost is amortized) and divides.
template <class F> double median_seconds(int samples, int inner, F&& f) {
  std::vector<double> t;
  t.reserve(std::size_t(samples));
  for (int s = 0; s < samples; ++s) {
    const auto t0 = clock::now();
    for (int i = 0; i < inner; ++i) f();
    t.push_back(seconds_since(t0) / inner);
  }
  return median(std::move(t));
}

// Median seconds of single calls of f, each timed on its own, minus the median cost of reading
// the clock twice (measured the same way around an empty body).
template <class F> double median_single_call_seconds(int calls, F&& f) {
  std::vector<double> t, empty;
  t.reserve(std::size_t(calls));
  empty.reserve(std::size_t(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = clock::now();
    const auto t1 = clock::now();
    f();
    const auto t2 = clock::now();
    empty.push_back(std::chrono::duration<double>(t1 - t0).count());
    t.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  return median(std::move(t)) - median(std::move(empty));
}

// Calls f repeatedly for about `warm_s` seconds and returns how many calls fit in `budget_s`
// seconds (at least 1): a cheap way to size `inner` for median_seconds.
template <class F> int calls_per(double budget_s, F&& f, double warm_s = 0.05) {
  int calls = 0;
  const auto t0 = clock::now();
  do { f(); ++calls; } while (seconds_since(t0) < warm_s);
  const double per = seconds_since(t0) / calls;
  return std::max(1, int(budget_s / per));
}

inline void print(const char* name, double value) { std::printf("%s: %.4g\n", name, value); }

// How many cores' worth of compute the machine gives this process right now: a compute-bound
// loop (~30 ms) on one thread, then on `threads` threads at once; 2.0 on an idle 2-core machine,
// about 1.0 when another process keeps one core busy. Printed next to the multi-threaded
// figures so that they can be read against the load the machine was under.
inline double thread_capacity(unsigned threads) {
  auto spin = [] {
    double a = 1.0, b = 1.0;
    for (long i = 0; i < 30'000'000; ++i) a = a * 0.999999 + b, b = b * 0.999999 + 1e-9;
    do_not_optimize(a + b);
  };
  const auto t0 = clock::now();
  spin();
  const double one = seconds_since(t0);
  std::vector<std::thread> pool;
  const auto t1 = clock::now();
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back(spin);
  for (auto& t : pool) t.join();
  const double many = seconds_since(t1);
  return double(threads) * one / many;
}

inline void print_machine() {
  std::printf("hardware_threads: %u\n", std::thread::hardware_concurrency());
  std::printf("tbb_default_concurrency: %d\n", oneapi::tbb::info::default_concurrency());
  std::printf("thread_capacity_at_start: %.2f\n", thread_capacity(std::thread::hardware_concurrency()));
}
inline void print_capacity_at_end() {
  std::printf("thread_capacity_at_end: %.2f\n", thread_capacity(std::thread::hardware_concurrency()));
}


}  // namespace bench
