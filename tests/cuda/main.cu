// Entry point of the CUDA test executables. Exit code 77 (Meson: SKIP) only when the machine
// has no GPU: no NVIDIA driver installed, or the driver reports no device. Any other failure of
// cudaGetDeviceCount (a driver that does not match the runtime, a device in a bad state) is a
// test failure, so a broken GPU machine cannot show green. With KILN_REQUIRE_GPU=1 (CI on GPU
// machines) a missing GPU is a failure too.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

namespace {

bool driver_installed() {
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!driver) return false;
  dlclose(driver);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const char* require_env = std::getenv("KILN_REQUIRE_GPU");
  const bool require = require_env && std::strcmp(require_env, "0") != 0 && *require_env;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  (void)cudaGetLastError();
  const bool installed = driver_installed();
  const bool no_device = (e == cudaSuccess && devices == 0) || e == cudaErrorNoDevice || (e != cudaSuccess && !installed);
  if (e != cudaSuccess && !no_device) {
    std::fprintf(stderr, "cuda tests FAILED: cudaGetDeviceCount: %s (%s), with an NVIDIA driver installed\n", cudaGetErrorName(e),
                 cudaGetErrorString(e));
    return 1;
  }
  if (no_device) {
    const char* why = e == cudaSuccess ? "the driver reports no devices" : installed ? cudaGetErrorString(e) : "no NVIDIA driver (libcuda.so.1) installed";
    if (require) {
      std::fprintf(stderr, "cuda tests FAILED: KILN_REQUIRE_GPU is set but there is no GPU (%s)\n", why);
      return 1;
    }
    std::printf("cuda tests skipped: no GPU (%s); set KILN_REQUIRE_GPU=1 to make this a failure\n", why);
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
