// A second copy of a host variable store (a GPU's) and which copy of each variable is current.
//
// The host store stays the store users, checkpoints and callbacks see; a backend with its own
// memory keeps a mirror of the variables its plans use, and these rules keep the two coherent:
// - host_written(name): the host copy was (or may be about to be) edited, so it must reach the
//   device before the device reads it again: push() copies exactly these;
// - device_written(i): a run assigned the variable on the device, so the host copy is stale:
//   pull() copies exactly these back;
// - a variable is never both: the backend pushes before every run, and a host access pulls
//   first, so an edit on one side never reverts the other.
// One mirror per (host store, device) is shared by every executor bound to both, so an
// actor/learner pair reads the weights the other wrote.
//
// Memory is the device's allocator and copier (CUDA's in backends/cuda/variables.cuh; a host
// one in the tests, which check this bookkeeping without a GPU):
//   using buffer = ...;                                 // owns device memory, movable
//   buffer allocate(std::size_t bytes); void* data(buffer&);
//   void to_device(void* device, const void* host, std::size_t bytes);
//   void to_host(void* host, const void* device, std::size_t bytes);
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include "error.hpp"

namespace kiln {

enum class residency : std::uint8_t { in_sync, host_newer, device_newer };

template <class Memory> class mirrored_variables {
 public:
  explicit mirrored_variables(Memory memory = {}) : memory_(std::move(memory)) {}
  mirrored_variables(const mirrored_variables&) = delete;
  mirrored_variables& operator=(const mirrored_variables&) = delete;

  // The index of the mirror of host variable `name` (its host storage, `bytes` long), created
  // from the host copy on first use. A variable bound again (by another executor) keeps its
  // device copy, which may be newer than the host's.
  int bind(std::string_view name, void* host, std::size_t bytes) {
    const int found = find(name);
    if (found >= 0) {
      slot& s = *slots_[std::size_t(found)];
      if (s.host != host || s.bytes != bytes)
        throw error("kiln: variable '" + s.name + "' is mirrored with another size or storage than its host store holds");
      return found;
    }
    auto s = std::make_unique<slot>(slot{std::string(name), host, bytes, memory_.allocate(bytes), residency::in_sync});
    if (bytes) memory_.to_device(memory_.data(s->device), host, bytes);
    slots_.push_back(std::move(s));
    return int(slots_.size()) - 1;
  }

  void* device(int i) { return memory_.data(slots_[std::size_t(i)]->device); }
  residency state(int i) const { return slots_[std::size_t(i)]->state; }
  int find(std::string_view name) const {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i]->name == name) return int(i);
    return -1;
  }
  std::size_t size() const { return slots_.size(); }

  // A run is about to write variable i on the device (the backend pushed host edits first).
  void device_written(int i) {
    slot& s = *slots_[std::size_t(i)];
    if (s.state == residency::host_newer)
      throw error("kiln: variable '" + s.name + "' was edited on the host and not pushed before a run wrote it on the device");
    s.state = residency::device_newer;
  }
  // The host copy of `name` is handed out for editing: the device copy is brought over first.
  void host_written(std::string_view name) {
    const int i = find(name);
    if (i < 0) return;  // not mirrored: the host copy is the only one
    pull_one(*slots_[std::size_t(i)]);
    slots_[std::size_t(i)]->state = residency::host_newer;
  }
  void host_written_all() {
    for (auto& s : slots_) {
      pull_one(*s);
      s->state = residency::host_newer;
    }
  }
  // Brings the host copy of `name` up to date without marking it edited.
  void pull(std::string_view name) {
    const int i = find(name);
    if (i >= 0) pull_one(*slots_[std::size_t(i)]);
  }
  void pull() {
    for (auto& s : slots_) pull_one(*s);
  }
  // Copies the host edits to the device; nothing else.
  void push() {
    for (auto& s : slots_)
      if (s->state == residency::host_newer) {
        if (s->bytes) memory_.to_device(memory_.data(s->device), s->host, s->bytes);
        bytes_pushed_ += s->bytes;
        s->state = residency::in_sync;
      }
  }

  // Bytes copied since construction (tests check that only the stale copies move).
  std::size_t bytes_pushed() const { return bytes_pushed_; }
  std::size_t bytes_pulled() const { return bytes_pulled_; }
  Memory& memory() { return memory_; }

 private:
  struct slot {
    std::string name;
    void* host;
    std::size_t bytes;
    typename Memory::buffer device;
    residency state;
  };

  void pull_one(slot& s) {
    if (s.state != residency::device_newer) return;
    if (s.bytes) memory_.to_host(s.host, memory_.data(s.device), s.bytes);
    bytes_pulled_ += s.bytes;
    s.state = residency::in_sync;
  }

  Memory memory_;
  std::vector<std::unique_ptr<slot>> slots_;
  std::size_t bytes_pushed_ = 0, bytes_pulled_ = 0;
};

}  // namespace kiln
