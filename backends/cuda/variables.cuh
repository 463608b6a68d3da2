// The device copies of a host variable store: one mirror (runtime/mirror.hpp) per store and
// GPU, shared by every CUDA executor bound to both, so executors that share a store also share
// its device copy (an actor reads the weights its learner just wrote).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include "../../runtime/mirror.hpp"
#include "../../runtime/variables.hpp"
#include "check.cuh"
#include "memory.cuh"

namespace kiln::cuda_detail {

// Synchronous copies: every executor run ends with a stream synchronize, so no kernel is using
// a variable while the host copies it (the caller has made the mirror's device current).
struct device_memory {
  using buffer = device_buffer;
  int device = 0;
  buffer allocate(std::size_t bytes) {
    buffer b;
    b.reset(bytes);
    return b;
  }
  static void* data(buffer& b) { return b.data(); }
  static void to_device(void* device, const void* host, std::size_t bytes) { KILN_CUDA(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice)); }
  static void to_host(void* host, const void* device, std::size_t bytes) { KILN_CUDA(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost)); }
};

using device_variables = mirrored_variables<device_memory>;

// The mirror of `store` on `device`, created on first use and kept while an executor holds it.
inline std::shared_ptr<device_variables> device_variables_for(const variables& store, int device) {
  static std::mutex lock;
  static std::map<std::pair<const variables*, int>, std::weak_ptr<device_variables>> mirrors;
  const std::lock_guard<std::mutex> guard(lock);
  std::weak_ptr<device_variables>& entry = mirrors[{&store, device}];
  if (auto live = entry.lock()) return live;
  for (auto it = mirrors.begin(); it != mirrors.end();)  // forget mirrors no executor holds
    it = it->second.expired() && &it->second != &entry ? mirrors.erase(it) : std::next(it);
  auto fresh = std::make_shared<device_variables>(device_memory{device});
  entry = fresh;
  return fresh;
}

}  // namespace kiln::cuda_detail
