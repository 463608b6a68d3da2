// relu(x·W + b): batch 1 with 4 -> 128 (latency per run(), feed binding included) and batch 1024
// with 784 -> 300 (throughput) against hand-written single-threaded Eigen.
#include <thread>
#include <oneapi/tbb/global_control.h>
#include "dense_common.hpp"
#include "roofline.hpp"

int main() {
  using namespace dense;
  bench::print_machine();

  // ---- batch 1, 4 -> 128 ------------------------------------------------------------------------
  {
    constexpr std::int64_t K = 4, N = 128;
    auto ex = compile<cpu>(layer<K, N>);
    bench::print_plan_work<decltype(ex)::program_type>("dense_b1", 1);
    eigen_layer ref(ex.variable<float>("W").data(), ex.variable<float>("b").data(), K, N);
    const std::vector<float> x = input(1, K, 0.1);
    std::printf("dense_b1_max_abs_diff_vs_eigen: %.3g\n", max_abs_diff(run(ex, x.data(), 1, K), ref(x.data(), 1), N));

    auto kiln_call = [&] { bench::do_not_optimize(run(ex, x.data(), 1, K)); };
    auto eigen_call = [&] { bench::do_not_optimize(ref(x.data(), 1)); };
    const int inner = bench::calls_per(2e-3, kiln_call);  // ~2 ms per sample
    std::vector<double> tk, tk1, te;
    for (int round = 0; round < 5; ++round) {
      tk.push_back(bench::median_seconds(41, inner, kiln_call));
      {
        oneapi::tbb::global_control gc(oneapi::tbb::global_control::max_allowed_parallelism, 1);
        tk1.push_back(bench::median_seconds(41, inner, kiln_call));
      }
      te.push_back(bench::median_seconds(41, inner, eigen_call));
    }
    std::printf("dense_b1_method: median over 5 rounds x 41 samples of %d back-to-back run() calls each\n", inner);
    const double k = bench::median(tk), k1 = bench::median(tk1), e = bench::median(te);
    const double single = bench::median_single_call_seconds(200000, kiln_call);
    bench::print("dense_b1_kiln_us", k * 1e6);
    bench::print("dense_b1_kiln_single_call_median_us", single * 1e6);
    bench::print("dense_b1_kiln_1t_us", k1 * 1e6);
    bench::print("dense_b1_eigen_1t_us", e * 1e6);
    bench::print("dense_b1_goal_us", 0.2);
    std::printf("dense_b1_goal_met: %s\n", k <= 0.2e-6 ? "yes" : "no");
  }

  // ---- batch 1024, 784 -> 300 -------------------------------------------------------------------
  {
    constexpr std::int64_t M = 1024, K = 784, N = 300;
    auto ex = compile<cpu>(layer<K, N>);
    bench::print_plan_work<decltype(ex)::program_type>("dense_b1024", M);
    eigen_layer ref(ex.variable<float>("W").data(), ex.variable<float>("b").data(), K, N);
    const std::vector<float> x = input(M, K, 0.3);
    std::printf("dense_b1024_max_abs_diff_vs_eigen: %.3g\n", max_abs_diff(run(ex, x.data(), M, K), ref(x.data(), M), M * N));

    auto kiln_call = [&] { bench::do_not_optimize(run(ex, x.data(), M, K)); };
    auto eigen_call = [&] { bench::do_not_optimize(ref(x.data(), M)); };
    std::vector<double> tk, tk1, te;
    for (int round = 0; round < 7; ++round) {
      tk.push_back(bench::median_seconds(9, 5, kiln_call));
      {
        oneapi::tbb::global_control gc(oneapi::tbb::global_control::max_allowed_parallelism, 1);
        tk1.push_back(bench::median_seconds(9, 5, kiln_call));
      }
      te.push_back(bench::median_seconds(9, 5, eigen_call));
    }
    const double k = bench::median(tk), k1 = bench::median(tk1), e = bench::median(te);
    const double flops = 2.0 * double(M) * double(K) * double(N);
    std::printf("dense_b1024_method: median over 7 rounds x 9 samples of 5 calls; Eigen single-threaded\n");
    bench::print("dense_b1024_kiln_us", k * 1e6);
    bench::print("dense_b1024_kiln_1t_us", k1 * 1e6);
    bench::print("dense_b1024_eigen_1t_us", e * 1e6);
    bench::print("dense_b1024_kiln_gflops", flops / k * 1e-9);
    bench::print("dense_b1024_kiln_1t_gflops", flops / k1 * 1e-9);
    bench::print("dense_b1024_eigen_1t_gflops", flops / e * 1e-9);
    bench::print("dense_b1024_ratio_kiln_vs_eigen_1t", e / k);
    bench::print("dense_b1024_ratio_kiln_1t_vs_eigen_1t", e / k1);
  }
  bench::print_capacity_at_end();
  return 0;
}
