// Owning handles for device memory, pinned host memory, streams, cuBLAS and CUDA graphs. Each
// frees its resource in the destructor and never throws from it (the process may be unwinding
// from a CUDA error already).
#pragma once
#include <cstddef>
#include <utility>
#include "check.cuh"

namespace kiln::cuda_detail {

template <class Handle, auto Destroy> class unique_handle {
 public:
  unique_handle() = default;
  explicit unique_handle(Handle h) : h_(h) {}
  unique_handle(unique_handle&& o) noexcept : h_(std::exchange(o.h_, Handle{})) {}
  unique_handle& operator=(unique_handle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, Handle{});
    }
    return *this;
  }
  ~unique_handle() { reset(); }
  void reset(Handle h = Handle{}) {
    if (h_) (void)Destroy(h_);
    h_ = h;
  }
  Handle get() const { return h_; }
  explicit operator bool() const { return h_ != Handle{}; }

 private:
  Handle h_{};
};

using stream_handle = unique_handle<cudaStream_t, cudaStreamDestroy>;
using cublas_handle = unique_handle<cublasHandle_t, cublasDestroy>;
using graph_handle = unique_handle<cudaGraph_t, cudaGraphDestroy>;
using graph_exec_handle = unique_handle<cudaGraphExec_t, cudaGraphExecDestroy>;

// Memory from `Alloc`, released with `Free`; size in bytes. Reset only grows or frees.
template <auto Free> class raw_buffer {
 public:
  raw_buffer() = default;
  raw_buffer(raw_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  raw_buffer& operator=(raw_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~raw_buffer() { release(); }
  std::byte* data() const { return static_cast<std::byte*>(p_); }
  std::size_t size() const { return size_; }
  void release() {
    if (p_) (void)Free(p_);
    p_ = nullptr;
    size_ = 0;
  }

 protected:
  void* p_ = nullptr;
  std::size_t size_ = 0;
};

// A failed allocation is reported once: the runtime also keeps it as the "last error", which
// the next kernel launch check would otherwise report as its own failure.
inline void allocate_or_throw(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  check(e, call, __FILE__, __LINE__);
}

// reset() allocates the new memory before it frees the old: when the allocation fails (out of
// memory) the buffer still holds its old memory, and every pointer into it stays valid.
class device_buffer : public raw_buffer<cudaFree> {
 public:
  void reset(std::size_t bytes) {
    void* fresh = nullptr;
    if (bytes) allocate_or_throw(cudaMalloc(&fresh, bytes), "cudaMalloc");
    release();
    p_ = fresh;
    size_ = bytes;
  }
};

// Page-locked host memory: the only kind a device copy can overlap with.
class pinned_buffer : public raw_buffer<cudaFreeHost> {
 public:
  void reset(std::size_t bytes) {
    void* fresh = nullptr;
    if (bytes) allocate_or_throw(cudaMallocHost(&fresh, bytes), "cudaMallocHost");
    release();
    p_ = fresh;
    size_ = bytes;
  }
};

using event_handle = unique_handle<cudaEvent_t, cudaEventDestroy>;

// Makes `device` current for a scope and restores the previous one (other libraries in the
// process may be working on another GPU).
class device_scope {
 public:
  explicit device_scope(int device) {
    KILN_CUDA(cudaGetDevice(&previous_));
    if (previous_ != device) KILN_CUDA(cudaSetDevice(device));
  }
  ~device_scope() { (void)cudaSetDevice(previous_); }
  device_scope(const device_scope&) = delete;
  device_scope& operator=(const device_scope&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace kiln::cuda_detail
