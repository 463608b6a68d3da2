// The machine's ceilings for the roofline table (tools/roofline.sh): the f32 FMA throughput of
// one core and of all cores, with the widest packets this build targets (Eigen's packet type: 16
// lanes with AVX-512, 8 with AVX2, 4 with SSE), and the memory bandwidth of a STREAM triad
// (a[i] = b[i] + s·c[i] over arrays far larger than the caches), on one and on all cores.
// Prints `name: value` lines: peak_fma_gflops_1t, peak_fma_gflops, stream_triad_gbps_1t,
// stream_triad_gbps, and the packet width. Each figure is the best of several repetitions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>
#include <Eigen/Core>
#include "bench_util.hpp"

namespace {

namespace ei = Eigen::internal;
using packet = ei::packet_traits<float>::type;
constexpr int lanes = ei::unpacket_traits<packet>::size;
// Independent FMA chains: enough to cover two FMA pipes of 4-5 cycles' latency, few enough to
// stay in the 16 vector registers of AVX2.
constexpr int chains = 12;

// FLOPs per second of one thread running `iterations` rounds of `chains` packet FMAs.
double fma_rate(long iterations) {
  packet acc[chains];
  for (int c = 0; c < chains; ++c) acc[c] = ei::pset1<packet>(float(c) * 1e-3f);
  const packet a = ei::pset1<packet>(0.999999f), b = ei::pset1<packet>(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  // unrolled in the source, so that the accumulators stay in registers
  [&]<int... c>(std::integer_sequence<int, c...>) {
    for (long i = 0; i < iterations; ++i) ((acc[c] = ei::pmadd(acc[c], a, b)), ...);
  }(std::make_integer_sequence<int, chains>{});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int c = 0; c < chains; ++c) sink += ei::predux(acc[c]);
  bench::do_not_optimize(sink);
  return 2.0 * lanes * chains * double(iterations) / s;
}

// Bytes per second of a triad over [begin, end) of the three arrays (3 x 4 bytes per element,
// STREAM's count: the write-allocate read of a is not counted).
double triad_rate(float* a, const float* b, const float* c, std::size_t begin, std::size_t end) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = begin; i < end; ++i) a[i] = b[i] + 3.0f * c[i];
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bench::do_not_optimize(a[begin]);
  return 12.0 * double(end - begin) / s;
}

// Runs f(t) on `threads` threads at once and returns the sum of their rates.
template <class F> double on_threads(int threads, F f) {
  std::vector<double> rate(static_cast<std::size_t>(threads), 0.0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { rate[std::size_t(t)] = f(t); });
  for (auto& th : pool) th.join();
  double total = 0;
  for (double r : rate) total += r;
  return total;
}

}  // namespace

int main() {
  bench::print_machine();
  const int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("packet_lanes_f32: %d\n", lanes);
  constexpr long fma_iterations = 50'000'000;
  double fma1 = 0, fma_all = 0;
  for (int r = 0; r < 5; ++r) {
    fma1 = std::max(fma1, fma_rate(fma_iterations));
    fma_all = std::max(fma_all, on_threads(threads, [&](int) { return fma_rate(fma_iterations); }));
  }
  bench::print("peak_fma_gflops_1t", fma1 * 1e-9);
  bench::print("peak_fma_gflops", fma_all * 1e-9);

  const std::size_t n = std::size_t(64) << 20;  // 3 x 256 MiB
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  double bw1 = 0, bw_all = 0;
  for (int r = 0; r < 5; ++r) {
    bw1 = std::max(bw1, triad_rate(a.data(), b.data(), c.data(), 0, n));
    bw_all = std::max(bw_all, on_threads(threads, [&](int t) {
                        const std::size_t per = n / std::size_t(threads);
                        return triad_rate(a.data(), b.data(), c.data(), std::size_t(t) * per, std::size_t(t + 1) * per);
                      }));
  }
  bench::print("stream_triad_gbps_1t", bw1 * 1e-9);
  bench::print("stream_triad_gbps", bw_all * 1e-9);
  bench::print_capacity_at_end();
  return 0;
}
