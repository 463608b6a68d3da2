// Turning CUDA and cuBLAS failures into kiln::error, with the failing call and the driver's words.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <string>
#include "../../runtime/error.hpp"

namespace kiln::cuda_detail {

inline const char* cublas_message(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
    default: return "unknown cuBLAS status";
  }
}

[[noreturn]] inline void fail(const char* call, const std::string& message, const char* file, int line) {
  throw error(std::string("kiln: ") + call + " failed: " + message + " (" + file + ":" + std::to_string(line) + ")");
}

inline void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess) fail(call, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e), file, line);
}
inline void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(call, cublas_message(s), file, line);
}

}  // namespace kiln::cuda_detail

// KILN_CUDA(cudaMalloc(...)), KILN_CUDA(cublasSgemm(...)): throws kiln::error naming the call.
#define KILN_CUDA(call) ::kiln::cuda_detail::check((call), #call, __FILE__, __LINE__)
// After a <<<...>>> launch: launch-configuration errors surface here, not at the next sync.
#define KILN_CUDA_LAUNCHED(what) ::kiln::cuda_detail::check(cudaGetLastError(), what, __FILE__, __LINE__)
