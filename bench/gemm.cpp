// The f32 GEMM kernel on one thread (backends/cpu/gemm.hpp) against Eigen's GEMM and, when the
// machine has it, OpenBLAS (loaded at run time: no build dependency; set OPENBLAS_CORETYPE to
// force its kernels, see tools/peer_sweep.sh), on the MLP's layer shapes: forward x W, the
// weight gradient x^T dy. Prints GFLOP/s and ratios.
#include <dlfcn.h>
#include <cstdlib>
#include <string>
#include <vector>
#include <kiln.hpp>
#include "bench_util.hpp"

using namespace kiln::cpu_detail;
using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*, const float*,
                          const int*, const float*, float*, const int*);

namespace {

struct product {
  const char* name;
  int M, K, N;
  bool ta, tb;
};

template <bool TA, bool TB> void run_kiln(const product& p, const float* a, const float* b, float* c) {
  static_assert(!TB, "kiln's kernel takes b untransposed (matmul.hpp transposes a small b once, or calls Eigen)");
  blocked_gemm_rows<TA>(a, b, c, p.M, p.N, p.K, 0, p.M);
}
template <bool TA, bool TB> void run_eigen(const product& p, const float* a, const float* b, float* c) {
  eigen_gemm_rows<float, TA, TB>(a, b, c, p.M, p.N, p.K, 0, p.M);
}

template <class F> void dispatch(const product& p, F&& f) {
  if (!p.ta) f.template operator()<false, false>();
  else f.template operator()<true, false>();
}

}  // namespace

int main() {
  setenv("OPENBLAS_NUM_THREADS", "1", 0);
  void* blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  auto sgemm = blas ? reinterpret_cast<sgemm_fn>(dlsym(blas, "sgemm_")) : nullptr;
  using config_fn = char* (*)();
  auto config = blas ? reinterpret_cast<config_fn>(dlsym(blas, "openblas_get_config")) : nullptr;
  auto core = blas ? reinterpret_cast<config_fn>(dlsym(blas, "openblas_get_corename")) : nullptr;
  bench::print_machine();
  std::printf("openblas: %s (%s)\n", config ? config() : "not found", core ? core() : "-");
  std::printf("kiln_gemm_tile: %d x %d\n", gemm::MR, gemm::NR);
  const product products[] = {
      {"mlp_forward_100x784x300", 100, 784, 300, false, false},
      {"mlp_weight_grad_784x100x300", 784, 100, 300, true, false},
  };
  for (const product& p : products) {
    std::vector<float> a(std::size_t(p.M) * p.K), b(std::size_t(p.K) * p.N), c(std::size_t(p.M) * p.N), want(c.size());
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(int(i % 17) - 8) * 0.1f;
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(int(i % 13) - 6) * 0.1f;
    const double flops = 2.0 * p.M * p.K * p.N;
    auto time = [&](auto&& f) { return bench::median_seconds(7, 20, f); };
    double t_kiln = 0, t_eigen = 0;
    dispatch(p, [&]<bool TA, bool TB>() {
      run_eigen<TA, TB>(p, a.data(), b.data(), want.data());
      run_kiln<TA, TB>(p, a.data(), b.data(), c.data());
      t_kiln = time([&] { run_kiln<TA, TB>(p, a.data(), b.data(), c.data()); });
      t_eigen = time([&] { run_eigen<TA, TB>(p, a.data(), b.data(), want.data()); });
    });
    double worst = 0;  // kiln against Eigen, relative to the magnitude of the sums
    for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, double(std::abs(c[i] - want[i])) / (1.0 + std::abs(want[i])));
    const std::string n = p.name;
    bench::print(("kiln_gflops_" + n).c_str(), flops / t_kiln * 1e-9);
    bench::print(("eigen_gflops_" + n).c_str(), flops / t_eigen * 1e-9);
    bench::print(("kiln_over_eigen_speed_" + n).c_str(), t_eigen / t_kiln);
    bench::print(("max_relative_difference_" + n).c_str(), worst);
    if (sgemm) {
      // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
      const int m = p.M, nn = p.N, k = p.K, lda = p.ta ? p.M : p.K, ldb = p.tb ? p.K : p.N;
      const float one = 1, zero = 0;
      const char* tb = p.tb ? "T" : "N";
      const char* ta = p.ta ? "T" : "N";
      const double t_blas = time([&] { sgemm(tb, ta, &nn, &m, &k, &one, b.data(), &ldb, a.data(), &lda, &zero, want.data(), &nn); });
      bench::print(("openblas_gflops_" + n).c_str(), flops / t_blas * 1e-9);
      bench::print(("kiln_over_openblas_speed_" + n).c_str(), t_blas / t_kiln);
    }
  }
  bench::print_capacity_at_end();
}
