// Entry point of the CUDA test executable: without a visible GPU every test is skipped, and the
// exit code 77 makes Meson report the executable as SKIP rather than as a pass.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <cstdio>
#include <cuda_runtime.h>

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("cuda tests skipped: no GPU visible (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
    (void)cudaGetLastError();
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
