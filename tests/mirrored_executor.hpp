// A CPU executor behind the CUDA executor's variable contract, for host-side tests of it: the
// plan runs on a private "device" store, and the user's store is kept coherent with it by
// runtime/mirror.hpp, the bookkeeping the CUDA executor uses (backends/cuda/variables.cuh), with
// memcpy for the device copies. Whatever reads or writes the user's store without going through
// vars(), variable() or mark_host_written() sees stale values here exactly as it would on a GPU.
#pragma once
#include <cstring>
#include <span>
#include <string_view>
#include <vector>
#include <backends/cpu/executor.hpp>
#include <runtime/mirror.hpp>

namespace kt {

// "Device" memory: the entries of a second variable store, which the CPU executors run on.
struct store_memory {
  using buffer = void*;
  kiln::variables* device = nullptr;
  std::string_view binding;  // the variable the next allocate() is for
  buffer allocate(std::size_t) { return device->find(binding)->data.data(); }
  static void* data(buffer& b) { return b; }
  static void to_device(void* d, const void* h, std::size_t n) { std::memcpy(d, h, n); }
  static void to_host(void* h, const void* d, std::size_t n) { std::memcpy(h, d, n); }
};

// One host store, its "device" copy and their bookkeeping; shared by the executors bound to it
// (as the CUDA executors of one store share its mirror per GPU).
struct mirrored_store {
  kiln::variables host, device;
  kiln::mirrored_variables<store_memory> mirror{store_memory{&device, {}}};
};

template <class Model> class mirrored_executor {
 public:
  using P = kiln::program<Model>;
  using program_type = P;

  explicit mirrored_executor(mirrored_store& s) : s_(s), exe_(&s.device) {
    for (int v = 0; v < P::plan.n_variables; ++v) {
      const int id = P::plan.variables[std::size_t(v)];
      const kiln::node& n = P::nodes[std::size_t(id)];
      void* host = s_.host.bind(n, std::span<const double>(P::pool.data(), P::pool.size()), P::seed);
      s_.mirror.memory().binding = n.name.view();
      const int index = s_.mirror.bind(n.name.view(), host, kiln::value_bytes<P>(id, 1));
      if (kiln::assigns_variable<P>(id)) assigned_.push_back(index);
    }
  }

  // As the CUDA executor: host edits go over, the plan's assigns make the device copy newer.
  const kiln::run_outputs<P::NO>& run(std::span<const kiln::feed> feeds) {
    s_.mirror.push();
    for (int i : assigned_) s_.mirror.device_written(i);
    return exe_.run(feeds);
  }
  const kiln::run_outputs<P::NO>& run(std::initializer_list<kiln::feed> feeds = {}) {
    return run(std::span<const kiln::feed>(feeds.begin(), feeds.size()));
  }
  kiln::variables& vars() {
    s_.mirror.host_written_all();
    return s_.host;
  }
  template <kiln::scalar_type T> kiln::tensor_view<T> variable(std::string_view name) {
    s_.mirror.host_written(name);
    return s_.host.template get<T>(name);
  }
  void mark_host_written(std::string_view name) { s_.mirror.host_written(name); }
  void pull_variables() { s_.mirror.pull(); }
  void push_variables() { s_.mirror.push(); }

 private:
  mirrored_store& s_;
  kiln::cpu_executor<P> exe_;
  std::vector<int> assigned_;
};

}  // namespace kt
