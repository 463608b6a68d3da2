// What a LibTorch peer actually ran on, printed as `name: value` lines, so that a ratio against
// it can be judged: the BLAS that provides sgemm_ (the one LibTorch's GEMMs call, whatever
// `update-alternatives` or LD_LIBRARY_PATH selected), its threading and core type, the malloc in
// use (LD_PRELOAD'ed tcmalloc/jemalloc or glibc, with GLIBC_TUNABLES), and LibTorch's threads.
// tools/peer_sweep.sh runs the peers under each configuration and keeps the best.
#pragma once
#include <dlfcn.h>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

namespace bench {

// The shared object that defines `symbol` in the process's global scope (resolved path), or "".
inline std::string library_of(const char* symbol) {
  void* f = dlsym(RTLD_DEFAULT, symbol);
  Dl_info info{};
  if (!f || !dladdr(f, &info) || !info.dli_fname) return "";
  char resolved[PATH_MAX];
  return realpath(info.dli_fname, resolved) ? std::string(resolved) : std::string(info.dli_fname);
}

inline void print_libtorch_config(const char* prefix = "libtorch") {
  std::printf("%s_version: %s\n", prefix, TORCH_VERSION);
  std::printf("%s_threads: %d (torch::set_num_threads: OpenMP, which also runs OpenBLAS-openmp and oneDNN)\n", prefix, at::get_num_threads());
  std::printf("%s_mkldnn: %s\n", prefix, at::hasMKLDNN() ? "yes" : "no");
  const std::string blas = library_of("sgemm_");
  std::printf("%s_blas_library: %s\n", prefix, blas.empty() ? "none" : blas.c_str());
  using config_fn = char* (*)();
  using parallel_fn = int (*)();
  if (auto config = reinterpret_cast<config_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config")); config && blas.find("openblas") != std::string::npos) {
    auto core = reinterpret_cast<config_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
    auto parallel = reinterpret_cast<parallel_fn>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
    const int mode = parallel ? parallel() : -1;
    std::printf("%s_blas: OpenBLAS (%s; core %s; threading %s)\n", prefix, config(), core ? core() : "?",
                mode == 0 ? "sequential" : mode == 1 ? "pthreads" : mode == 2 ? "OpenMP" : "?");
  } else if (blas.find("blis") != std::string::npos) {
    std::printf("%s_blas: BLIS (%s)\n", prefix, blas.find("openmp") != std::string::npos ? "OpenMP" : "pthreads");
  } else {
    std::printf("%s_blas: %s\n", prefix, blas.empty() ? "none" : "reference or other");
  }
  const std::string malloc_lib = library_of("malloc");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::printf("%s_malloc: %s%s%s\n", prefix, malloc_lib.empty() ? "?" : malloc_lib.c_str(), tunables ? " GLIBC_TUNABLES=" : "", tunables ? tunables : "");
}

}  // namespace bench
