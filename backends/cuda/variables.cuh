// The device copies of a host variable store: one mirror (runtime/mirror.hpp) per store and
// GPU, shared by every CUDA executor bound to both, so executors that share a store also share
// its device copy (an actor reads the weights its learner just wrote).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include "../../runtime/mirror.hpp"
#include "../../runtime/variables.hpp"
#include "check.cuh"
#include "memory.cuh"

namespace kiln::cuda_detail {

// Copies on the stream of the executor that asks (set before each use), waited for before they
// return: a host copy is read right after a pull, and another executor's stream may read a pushed
// copy next (a plain cudaMemcpy would run on the legacy default stream, which the executors'
// non-blocking streams do not wait for).
struct device_memory {
  using buffer = device_buffer;
  int device = 0;
  cudaStream_t stream = nullptr;
  buffer allocate(std::size_t bytes) {
    buffer b;
    b.reset(bytes);
    return b;
  }
  static void* data(buffer& b) { return b.data(); }
  void to_device(void* device_copy, const void* host, std::size_t bytes) const {
    KILN_CUDA(cudaMemcpyAsync(device_copy, host, bytes, cudaMemcpyHostToDevice, stream));
    KILN_CUDA(cudaStreamSynchronize(stream));
  }
  void to_host(void* host, const void* device_copy, std::size_t bytes) const {
    KILN_CUDA(cudaMemcpyAsync(host, device_copy, bytes, cudaMemcpyDeviceToHost, stream));
    KILN_CUDA(cudaStreamSynchronize(stream));
  }
};

using device_variables = mirrored_variables<device_memory>;

// The mirror of `store` on `device`, created on first use and kept while an executor holds it.
// A store mirrored on another GPU is refused: the bookkeeping tracks one device copy.
inline std::shared_ptr<device_variables> device_variables_for(const variables& store, int device) {
  static std::mutex lock;
  static std::map<std::pair<const variables*, int>, std::weak_ptr<device_variables>> mirrors;
  const std::lock_guard<std::mutex> guard(lock);
  for (const auto& [key, mirror] : mirrors)  // two device copies could not both be current
    if (key.first == &store && key.second != device && !mirror.expired())
      throw error("kiln: this variable store already has device copies on GPU " + std::to_string(key.second) +
                  "; the CUDA executors of one store must use one GPU (give the executor on GPU " + std::to_string(device) +
                  " its own store)");
  std::weak_ptr<device_variables>& entry = mirrors[{&store, device}];
  if (auto live = entry.lock()) return live;
  for (auto it = mirrors.begin(); it != mirrors.end();)  // forget mirrors no executor holds
    it = it->second.expired() && &it->second != &entry ? mirrors.erase(it) : std::next(it);
  auto fresh = std::make_shared<device_variables>(device_memory{device, nullptr});
  entry = fresh;
  return fresh;
}

}  // namespace kiln::cuda_detail
