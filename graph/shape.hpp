// Shapes are values inside the constexpr graph. Every dimension is static except, optionally, the
// leading one (the batch), which is bound when the executor runs.
#pragma once
#include <cstdint>
#include <initializer_list>
#include "text.hpp"

namespace kiln {

inline constexpr int max_rank = 6;
inline constexpr std::int64_t batch = -1;  // marks the dynamic leading dimension

struct shape {
  int rank = 0;
  std::int64_t dim[max_rank]{};

  constexpr shape() = default;
  constexpr shape(std::initializer_list<std::int64_t> dims) {
    for (auto d : dims) {
      if (rank < max_rank) dim[rank] = d;
      ++rank;
    }
  }
  constexpr bool dynamic() const { return rank > 0 && dim[0] == batch; }
  constexpr std::int64_t operator[](int i) const { return dim[i]; }
  // Elements per unit of batch (or all elements when static).
  constexpr std::int64_t static_elements() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= (dim[i] == batch ? 1 : dim[i]);
    return n;
  }
  constexpr std::int64_t elements(std::int64_t batch_size) const {
    return static_elements() * (dynamic() ? batch_size : 1);
  }
  constexpr std::int64_t extent(int i, std::int64_t batch_size) const {
    return dim[i] == batch ? batch_size : dim[i];
  }
  friend constexpr bool operator==(const shape& a, const shape& b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
      if (a.dim[i] != b.dim[i]) return false;
    return true;
  }
};

template <std::size_t N> constexpr void append_shape(fixed_text<N>& out, const shape& s) {
  out.append("[");
  for (int i = 0; i < s.rank; ++i) {
    if (i) out.append(",");
    if (s.dim[i] == batch) out.append("?");
    else out.append(s.dim[i]);
  }
  out.append("]");
}

constexpr fixed_text<64> to_text(const shape& s) {
  fixed_text<64> t;
  append_shape(t, s);
  return t;
}

// numpy broadcasting, aligned at the trailing dimension. Returns false when incompatible.
constexpr bool broadcast_shapes(const shape& a, const shape& b, shape& out) {
  out = shape{};
  out.rank = a.rank > b.rank ? a.rank : b.rank;
  for (int i = 0; i < out.rank; ++i) {
    int ia = a.rank - out.rank + i, ib = b.rank - out.rank + i;
    std::int64_t da = ia >= 0 ? a.dim[ia] : 1, db = ib >= 0 ? b.dim[ib] : 1;
    // The batch dim may only broadcast against 1 or itself, and only as the leading dim.
    if (da == db) out.dim[i] = da;
    else if (da == 1) out.dim[i] = db;
    else if (db == 1) out.dim[i] = da;
    else return false;
    if (out.dim[i] == batch && i != 0) return false;
  }
  return true;
}

}  // namespace kiln
