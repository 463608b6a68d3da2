// A chain of 8 elementwise ops over 16M f32 values:
//   z = sigmoid(exp(tanh(x * 1.5 + 0.5) * y) - 1) * 0.5
// (mul, add, tanh, mul, exp, sub, sigmoid, mul: five cheap ops, three transcendental).
//
// Contenders, each timed once per round, rounds interleaved so that load from other processes
// hits all of them alike; the figure is the median over rounds:
//   kiln            the fused executor, one pass, default oneTBB threads
//   kiln_1t         the same with oneapi::tbb::global_control limiting it to 1 thread
//   hand_simd       a hand-written single loop, single-threaded, explicit SIMD on Eigen's packet
//                   functions (ptanh, pexp, sigmoid as 1 / (1 + exp(-x))): what a user writes
//                   by hand with Eigen's SIMD layer
//   hand_kiln_math  the same single loop written with kiln's own packet functions
//                   (cpu_detail::packet_apply): same math as kiln, so kiln_1t / hand_kiln_math is
//                   the cost of the fused executor itself (feeds, arena, chunking, oneTBB)
//   hand_eigen      the same chain as one Eigen array expression, single-threaded (what an
//                   Eigen user writes; Eigen fuses it into one vectorized loop)
//   hand_libm       a plain scalar loop calling std::tanh / std::exp, single-threaded (g++ does
//                   not vectorize libm calls at -O2 without -ffast-math)
//   eager / eager_1t one pass per op over full arrays (a framework without fusion): eight kiln
//                   executors with one op each, the output of one fed to the next
// thread_capacity_* says how many cores the machine gave this process when the run started and
// ended (about 1.0 when another process keeps one of two cores busy: then kiln's 2-thread
// figures cannot beat its 1-thread ones).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>
#include <Eigen/Core>
#include <kiln.hpp>
#include <oneapi/tbb/global_control.h>
#include "bench_util.hpp"
#include "roofline.hpp"

using namespace kiln;

constexpr std::int64_t n_elems = std::int64_t(1) << 24;  // 16M

constexpr auto chain = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {n_elems});
  tensor y = g.placeholder("y", f32, {n_elems});
  tensor t = x * 1.5 + 0.5;
  t = tanh(t) * y;
  t = exp(t) - 1.0;
  t = sigmoid(t) * 0.5;
  g.output("z", t);
  return g;
};

// One op per graph, for the eager contender.
constexpr auto e_mul_c = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", a * 1.5); return g; };
constexpr auto e_add_c = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", a + 0.5); return g; };
constexpr auto e_tanh = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", tanh(a)); return g; };
constexpr auto e_mul_y = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {n_elems});
  tensor y = g.placeholder("y", f32, {n_elems});
  g.output("o", a * y);
  return g;
};
constexpr auto e_exp = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", exp(a)); return g; };
constexpr auto e_sub_c = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", a - 1.0); return g; };
constexpr auto e_sigmoid = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", sigmoid(a)); return g; };
constexpr auto e_mul_h = [] { graph g; tensor a = g.placeholder("a", f32, {n_elems}); g.output("o", a * 0.5); return g; };

namespace ei = Eigen::internal;
using packet = kiln::cpu_detail::packet_f32;  // Eigen's vector typedef without g++'s -Wignored-attributes
constexpr int width = kiln::cpu_detail::packet_width;
static_assert(n_elems % width == 0, "the SIMD hand loops have no scalar tail");

// Hand-written single loop with explicit SIMD on Eigen's packet functions (n is a multiple of the
// packet width).
static void hand_simd(const float* x, const float* y, float* z, std::int64_t n) {
  const packet c15 = ei::pset1<packet>(1.5f), c05 = ei::pset1<packet>(0.5f), one = ei::pset1<packet>(1.f);
  for (std::int64_t i = 0; i < n; i += width) {
    packet t = ei::padd(ei::pmul(ei::ploadu<packet>(x + i), c15), c05);
    t = ei::pmul(ei::ptanh(t), ei::ploadu<packet>(y + i));
    t = ei::psub(ei::pexp(t), one);
    t = ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(t))));
    ei::pstoreu(z + i, ei::pmul(t, c05));
  }
}

// The same loop on kiln's packet math.
static void hand_kiln_math(const float* x, const float* y, float* z, std::int64_t n) {
  using namespace kiln::cpu_detail;
  const packet c15 = ei::pset1<packet>(1.5f), c05 = ei::pset1<packet>(0.5f), one = ei::pset1<packet>(1.f);
  for (std::int64_t i = 0; i < n; i += width) {
    packet t = ei::padd(ei::pmul(ei::ploadu<packet>(x + i), c15), c05);
    t = ei::pmul(packet_apply<op::tanh>(t), ei::ploadu<packet>(y + i));
    t = ei::psub(packet_apply<op::exp>(t), one);
    ei::pstoreu(z + i, ei::pmul(packet_apply<op::sigmoid>(t), c05));
  }
}

// The plain loop a user writes first.
static void hand_libm(const float* x, const float* y, float* z, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    float t = std::tanh(x[i] * 1.5f + 0.5f) * y[i];
    t = std::exp(t) - 1.f;
    z[i] = 1.f / (1.f + std::exp(-t)) * 0.5f;
  }
}

static void hand_eigen(const float* x, const float* y, float* z, std::int64_t n) {
  Eigen::Map<const Eigen::ArrayXf> X(x, n), Y(y, n);
  Eigen::Map<Eigen::ArrayXf> Z(z, n);
  Z = ((((X * 1.5f + 0.5f).tanh() * Y).exp() - 1.f).logistic()) * 0.5f;
}

static double max_abs_diff(const float* a, const float* b, std::int64_t n) {
  double m = 0;
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

int main() {
  bench::print_machine();
  std::printf("elements: %lld\n", (long long)n_elems);
  std::printf("simd_width_f32: %d\n", width);

  const std::size_t count = std::size_t(n_elems);
  std::vector<float> x(count), y(count), ref(count), tmp(count);
  for (std::int64_t i = 0; i < n_elems; ++i) {
    x[std::size_t(i)] = float(std::sin(double(i) * 0.001) * 2.0);
    y[std::size_t(i)] = float(std::cos(double(i) * 0.0007));
  }
  const dims shape{n_elems};

  auto fused = compile<cpu>(chain);
  bench::print_plan_work<decltype(fused)::program_type>("fused", 1);
  auto e1 = compile<cpu>(e_mul_c);
  auto e2 = compile<cpu>(e_add_c);
  auto e3 = compile<cpu>(e_tanh);
  auto e4 = compile<cpu>(e_mul_y);
  auto e5 = compile<cpu>(e_exp);
  auto e6 = compile<cpu>(e_sub_c);
  auto e7 = compile<cpu>(e_sigmoid);
  auto e8 = compile<cpu>(e_mul_h);

  const float* kiln_out = nullptr;
  auto run_kiln = [&] {
    const feed f[] = {{"x", view(x.data(), shape)}, {"y", view(y.data(), shape)}};
    kiln_out = fused.run(f).get<float>("z").data();
  };
  const float* eager_out = nullptr;
  auto run_eager = [&] {
    auto step = [&](auto& ex, const float* in) {
      const feed f[] = {{"a", view(in, shape)}};
      return ex.run(f).template get<float>("o").data();
    };
    const float* a = step(e1, x.data());
    a = step(e2, a);
    a = step(e3, a);
    {
      const feed f[] = {{"a", view(a, shape)}, {"y", view(y.data(), shape)}};
      a = e4.run(f).get<float>("o").data();
    }
    a = step(e5, a);
    a = step(e6, a);
    a = step(e7, a);
    eager_out = step(e8, a);
  };

  // correctness first (also warms every path)
  hand_simd(x.data(), y.data(), ref.data(), n_elems);
  run_kiln();
  run_eager();
  std::printf("max_abs_diff_kiln_vs_hand_simd: %.3g\n", max_abs_diff(kiln_out, ref.data(), n_elems));
  std::printf("max_abs_diff_eager_vs_hand_simd: %.3g\n", max_abs_diff(eager_out, ref.data(), n_elems));
  hand_libm(x.data(), y.data(), tmp.data(), n_elems);
  std::printf("max_abs_diff_hand_simd_vs_libm: %.3g\n", max_abs_diff(tmp.data(), ref.data(), n_elems));
  hand_kiln_math(x.data(), y.data(), tmp.data(), n_elems);
  std::printf("max_abs_diff_kiln_vs_hand_kiln_math: %.3g\n", max_abs_diff(kiln_out, tmp.data(), n_elems));
  hand_eigen(x.data(), y.data(), tmp.data(), n_elems);
  std::printf("max_abs_diff_hand_eigen_vs_hand_simd: %.3g\n", max_abs_diff(tmp.data(), ref.data(), n_elems));

  auto time_once = [](auto&& f) {
    const auto t0 = bench::clock::now();
    f();
    return bench::seconds_since(t0);
  };

  const int rounds = 15;
  std::vector<double> t_kiln, t_kiln1, t_simd, t_same, t_eigen, t_eager, t_eager1, t_libm;
  for (int r = 0; r < rounds; ++r) {
    t_kiln.push_back(time_once(run_kiln));
    {
      oneapi::tbb::global_control gc(oneapi::tbb::global_control::max_allowed_parallelism, 1);
      t_kiln1.push_back(time_once(run_kiln));
      t_eager1.push_back(time_once(run_eager));
    }
    t_simd.push_back(time_once([&] { hand_simd(x.data(), y.data(), tmp.data(), n_elems); }));
    t_same.push_back(time_once([&] { hand_kiln_math(x.data(), y.data(), tmp.data(), n_elems); }));
    t_eigen.push_back(time_once([&] { hand_eigen(x.data(), y.data(), tmp.data(), n_elems); }));
    t_eager.push_back(time_once(run_eager));
    if (r < 3) t_libm.push_back(time_once([&] { hand_libm(x.data(), y.data(), tmp.data(), n_elems); }));  // slow: 3 rounds
  }
  bench::do_not_optimize(tmp[0]);

  const double kiln = bench::median(t_kiln), kiln1 = bench::median(t_kiln1), simd = bench::median(t_simd), same = bench::median(t_same),
               eigen = bench::median(t_eigen), eager = bench::median(t_eager), eager1 = bench::median(t_eager1),
               libm = bench::median(t_libm);
  auto gelem = [](double s) { return double(n_elems) / s * 1e-9; };
  std::printf("rounds: %d (hand_libm: %zu)\n", rounds, t_libm.size());
  std::printf("hand_loops_threads: 1\n");
  std::printf("kiln_threads: %d\n", oneapi::tbb::info::default_concurrency());
  bench::print("fused_kiln_ms", kiln * 1e3);
  bench::print("fused_kiln_1t_ms", kiln1 * 1e3);
  bench::print("fused_hand_simd_1t_ms", simd * 1e3);
  bench::print("fused_hand_kiln_math_1t_ms", same * 1e3);
  bench::print("fused_hand_eigen_1t_ms", eigen * 1e3);
  bench::print("fused_hand_libm_1t_ms", libm * 1e3);
  bench::print("eager_kiln_ms", eager * 1e3);
  bench::print("eager_kiln_1t_ms", eager1 * 1e3);
  bench::print("fused_kiln_gelem_per_s", gelem(kiln));
  bench::print("fused_kiln_1t_gelem_per_s", gelem(kiln1));
  bench::print("fused_hand_simd_1t_gelem_per_s", gelem(simd));
  bench::print("fused_hand_kiln_math_1t_gelem_per_s", gelem(same));
  bench::print("fused_hand_eigen_1t_gelem_per_s", gelem(eigen));
  bench::print("fused_hand_libm_1t_gelem_per_s", gelem(libm));
  bench::print("eager_kiln_gelem_per_s", gelem(eager));
  bench::print("eager_kiln_1t_gelem_per_s", gelem(eager1));
  // throughput ratios (> 1: kiln faster)
  bench::print("ratio_kiln_vs_hand_simd", simd / kiln);
  bench::print("ratio_kiln_1t_vs_hand_simd", simd / kiln1);
  bench::print("ratio_kiln_1t_vs_hand_kiln_math", same / kiln1);
  bench::print("ratio_kiln_1t_vs_hand_eigen", eigen / kiln1);
  bench::print("ratio_kiln_1t_vs_hand_libm", libm / kiln1);
  bench::print("ratio_kiln_vs_eager", eager / kiln);
  bench::print("ratio_kiln_1t_vs_eager_1t", eager1 / kiln1);
  bench::print_capacity_at_end();
  return 0;
}
