// relu(x·W + b) in kiln and in LibTorch side by side, in one program, on the same weights and
// inputs: batch 1 with 4 -> 128 and batch 1024 with 784 -> 300. LibTorch runs
// torch::relu(torch::addmm(b, x, W)) under torch::NoGradGuard on tensors that wrap the same
// memory (torch::from_blob), so neither side pays for copies the other does not.
//
// Threads: kiln uses oneTBB's default (all hardware threads); LibTorch gets the same number
// through torch::set_num_threads. Both are also measured with one thread. Contenders run in
// alternating blocks with a pause between them, so that OpenMP threads spinning after LibTorch's
// parallel regions do not steal time from kiln's oneTBB workers (and the other way round).
#include <algorithm>
#include <chrono>
#include <thread>
#include <oneapi/tbb/global_control.h>
#include <torch/types.h>
#include <torch/utils.h>
#include <torch/version.h>
#include "dense_common.hpp"
#include "peer_config.hpp"

namespace {

void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

struct result {
  double kiln = 0, kiln_1t = 0, torch = 0, torch_1t = 0;
};

template <std::int64_t K, std::int64_t N> result measure(const char* tag, std::int64_t M, int threads, int rounds, int samples) {
  using namespace dense;
  auto ex = compile<cpu>(layer<K, N>);
  float* w = ex.template variable<float>("W").data();
  float* b = ex.template variable<float>("b").data();
  const std::vector<float> x = input(M, K, 0.2);

  torch::NoGradGuard no_grad;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32);
  torch::Tensor tx = torch::from_blob(const_cast<float*>(x.data()), {M, K}, opts);
  torch::Tensor tw = torch::from_blob(w, {K, N}, opts);
  torch::Tensor tb = torch::from_blob(b, {N}, opts);

  {
    torch::Tensor ty = torch::relu(torch::addmm(tb, tx, tw));
    std::printf("%s_max_abs_diff_kiln_vs_libtorch: %.3g\n", tag, max_abs_diff(run(ex, x.data(), M, K), ty.data_ptr<float>(), M * N));
  }

  auto kiln_call = [&] { bench::do_not_optimize(run(ex, x.data(), M, K)); };
  auto torch_call = [&] {
    torch::Tensor ty = torch::relu(torch::addmm(tb, tx, tw));
    bench::do_not_optimize(ty.data_ptr<float>());
  };
  torch::set_num_threads(threads);
  const int kiln_inner = bench::calls_per(2e-3, kiln_call), torch_inner = bench::calls_per(2e-3, torch_call);
  std::vector<double> tk, tk1, tt, tt1;
  for (int r = 0; r < rounds; ++r) {
    tk.push_back(bench::median_seconds(samples, kiln_inner, kiln_call));
    settle();
    torch::set_num_threads(threads);
    tt.push_back(bench::median_seconds(samples, torch_inner, torch_call));
    settle();
    {
      oneapi::tbb::global_control gc(oneapi::tbb::global_control::max_allowed_parallelism, 1);
      tk1.push_back(bench::median_seconds(samples, kiln_inner, kiln_call));
    }
    settle();
    torch::set_num_threads(1);
    tt1.push_back(bench::median_seconds(samples, torch_inner, torch_call));
    settle();
  }
  torch::set_num_threads(threads);
  std::printf("%s_method: median over %d rounds x %d samples of %d (kiln) / %d (libtorch) back-to-back calls\n", tag, rounds, samples,
              kiln_inner, torch_inner);
  return {bench::median(tk), bench::median(tk1), bench::median(tt), bench::median(tt1)};
}

void report(const char* tag, const result& r, double flops) {
  auto line = [&](const char* what, double v) {
    std::printf("%s_%s: %.4g\n", tag, what, v);
  };
  line("kiln_us", r.kiln * 1e6);
  line("libtorch_us", r.torch * 1e6);
  line("speedup_vs_libtorch", r.torch / r.kiln);
  line("kiln_1t_us", r.kiln_1t * 1e6);
  line("libtorch_1t_us", r.torch_1t * 1e6);
  line("speedup_vs_libtorch_1t", r.torch_1t / r.kiln_1t);
  // LibTorch at its better thread count against kiln at its default (all threads).
  line("libtorch_best_us", std::min(r.torch, r.torch_1t) * 1e6);
  line("speedup_vs_libtorch_best", std::min(r.torch, r.torch_1t) / r.kiln);
  if (flops > 0) {
    line("kiln_gflops", flops / r.kiln * 1e-9);
    line("libtorch_gflops", flops / r.torch * 1e-9);
  }
}

}  // namespace

int main() {
  bench::print_machine();
  const int threads = oneapi::tbb::info::default_concurrency();
  torch::set_num_threads(threads);
  bench::print_libtorch_config();
  std::printf("threads_kiln: %d\n", threads);
  std::printf("threads_libtorch: %d\n", torch::get_num_threads());
  std::printf("threads_1t_runs: kiln via oneapi::tbb::global_control, libtorch via torch::set_num_threads(1)\n");

  const result b1 = measure<4, 128>("dense_b1", 1, threads, 5, 21);
  report("dense_b1", b1, 0);
  const result big = measure<784, 300>("dense_b1024", 1024, threads, 5, 7);
  report("dense_b1024", big, 2.0 * 1024 * 784 * 300);
  bench::print_capacity_at_end();
  return 0;
}
