// Host-side views of tensors: feeds into a run, outputs out of it, and variables in the store.
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "../graph/dtype.hpp"
#include "../graph/shape.hpp"
#include "checked.hpp"
#include "error.hpp"

namespace kiln {

// Concrete dims of a tensor at run time (no dynamic marker).
struct dims {
  int rank = 0;
  std::int64_t d[max_rank]{};
  dims() = default;
  dims(std::initializer_list<std::int64_t> list) {
    if (list.size() > std::size_t(max_rank)) throw error("kiln: rank " + std::to_string(list.size()) + " exceeds the maximum of 6");
    for (auto v : list) d[rank++] = v;
  }
  static dims of(const shape& s, std::int64_t batch_size) {
    dims r;
    r.rank = s.rank;
    for (int i = 0; i < s.rank; ++i) r.d[i] = s.extent(i, batch_size);
    return r;
  }
  // The element count, or -1 when an extent is negative or the product overflows int64 (dims
  // come from user input: a wrapped product would let a size check pass; see checked.hpp).
  std::int64_t checked_elements() const { return kiln::checked_elements(d, rank); }
  std::int64_t elements() const {
    const std::int64_t n = checked_elements();
    if (n < 0) throw error("kiln: shape " + to_string_of(*this) + " " + problem());
    return n;
  }
  // Why checked_elements() is -1, for messages.
  const char* problem() const {
    for (int i = 0; i < rank; ++i)
      if (d[i] < 0) return "has a negative dimension";
    return "has more elements than int64 can count";
  }
  std::int64_t operator[](int i) const { return d[i]; }
  static std::string to_string_of(const dims& x) {
    std::string s = "[";
    for (int i = 0; i < x.rank; ++i) s += (i ? "," : "") + std::to_string(x.d[i]);
    return s + "]";
  }
  friend bool operator==(const dims& a, const dims& b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
      if (a.d[i] != b.d[i]) return false;
    return true;
  }
};

inline std::string to_string(const dims& x) { return dims::to_string_of(x); }
inline std::string to_string(const shape& x) { return std::string(to_text(x).view()); }

// A typed view. Indexing with [] drops the leading dim, so b[1] = 10 assigns one element of a
// vector and w[0] = 0.5f fills the first row of a matrix.
template <class T> class tensor_view {
 public:
  tensor_view() = default;
  tensor_view(T* data, dims d) : data_(data), dims_(d) {}

  T* data() const { return data_; }
  const kiln::dims& shape() const { return dims_; }
  int rank() const { return dims_.rank; }
  std::int64_t size() const { return dims_.elements(); }
  std::span<T> flat() const { return {data_, std::size_t(size())}; }
  std::vector<std::remove_const_t<T>> to_vector() const { return {data_, data_ + size()}; }

  tensor_view operator[](std::int64_t i) const {
    if (dims_.rank == 0) throw error("kiln: cannot index a scalar");
    if (i < 0 || i >= dims_.d[0])
      throw error("kiln: index " + std::to_string(i) + " is out of range for shape " + to_string(dims_));
    kiln::dims rest;
    rest.rank = dims_.rank - 1;
    for (int k = 1; k < dims_.rank; ++k) rest.d[k - 1] = dims_.d[k];
    return tensor_view(data_ + i * rest.elements(), rest);
  }
  // Rows [begin, end) of the leading dim.
  tensor_view slice(std::int64_t begin, std::int64_t end) const {
    if (dims_.rank == 0 || begin < 0 || end > dims_.d[0] || begin > end)
      throw error("kiln: slice [" + std::to_string(begin) + ":" + std::to_string(end) + ") is out of range for shape " + to_string(dims_));
    kiln::dims d = dims_;
    d.d[0] = end - begin;
    return tensor_view(data_ + begin * (dims_.elements() / (dims_.d[0] ? dims_.d[0] : 1)), d);
  }
  T& item() const {
    if (size() != 1) throw error("kiln: item() needs exactly one element, shape is " + to_string(dims_));
    return *data_;
  }
  operator T&() const { return item(); }
  const tensor_view& operator=(std::remove_const_t<T> v) const requires(!std::is_const_v<T>) {
    const std::int64_t n = size();
    for (std::int64_t i = 0; i < n; ++i) data_[i] = v;
    return *this;
  }
  void assign(std::span<const std::remove_const_t<T>> values) const requires(!std::is_const_v<T>) {
    if (std::int64_t(values.size()) != size())
      throw error("kiln: assigning " + std::to_string(values.size()) + " values to shape " + to_string(dims_));
    std::memcpy(data_, values.data(), values.size() * sizeof(T));
  }
  T& at(std::initializer_list<std::int64_t> index) const {
    if (int(index.size()) != dims_.rank) throw error("kiln: " + std::to_string(index.size()) + " indices for shape " + to_string(dims_));
    std::int64_t off = 0;
    int k = 0;
    for (auto i : index) {
      if (i < 0 || i >= dims_.d[k]) throw error("kiln: index " + std::to_string(i) + " is out of range for shape " + to_string(dims_));
      off = off * dims_.d[k++] + i;
    }
    return data_[off];
  }

 private:
  T* data_ = nullptr;
  kiln::dims dims_{};
};

// A type-erased read-only tensor: what a feed carries, and what a run returns.
struct value_ref {
  const void* data = nullptr;
  dtype type = dtype::f32;
  kiln::dims shape{};

  template <scalar_type T> tensor_view<const T> as() const {
    if (dtype_of<T>() != type)
      throw error(std::string("kiln: value is ") + std::string(name_of(type)) + ", requested as " + std::string(name_of(dtype_of<T>())));
    return tensor_view<const T>(static_cast<const T*>(data), shape);
  }
};

template <scalar_type T> value_ref view(const T* data, dims d) { return {data, dtype_of<T>(), d}; }
template <scalar_type T> value_ref view(std::span<const T> data, dims d) {
  if (d.checked_elements() < 0)
    throw error("kiln: view of " + std::to_string(data.size()) + " values cannot have shape " + to_string(d) + ": it " + d.problem());
  if (std::int64_t(data.size()) != d.elements())
    throw error("kiln: view of " + std::to_string(data.size()) + " values cannot have shape " + to_string(d));
  return {data.data(), dtype_of<T>(), d};
}
template <scalar_type T> value_ref view(const std::vector<T>& data, dims d) { return view(std::span<const T>(data), d); }
template <scalar_type T> value_ref view(const tensor_view<T>& v) { return {v.data(), dtype_of<std::remove_const_t<T>>(), v.shape()}; }

struct feed {
  std::string_view name;
  value_ref value;
};

// 64-byte aligned, uninitialized storage.
class aligned_buffer {
 public:
  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t bytes) { reset(bytes); }
  void reset(std::size_t bytes) {
    data_.reset(bytes ? static_cast<std::byte*>(::operator new(round(bytes), std::align_val_t(64))) : nullptr);
    size_ = bytes;
  }
  std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  static std::size_t round(std::size_t n) { return (n + 63) / 64 * 64; }
  struct deleter {
    void operator()(std::byte* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<std::byte, deleter> data_;
  std::size_t size_ = 0;
};

}  // namespace kiln
