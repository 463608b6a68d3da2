// How a fused loop walks memory, shared by every backend: each leaf's stride along each dim of
// the loop's shape (0 where numpy broadcasting repeats it), then size-1 dims dropped and
// neighbouring dims merged wherever every leaf walks them contiguously, so the inner loop is as
// long as possible. A dynamic (batch) dim has size 1 here and is scaled at run time; it only leads.
#pragma once
#include <array>
#include <cstdint>
#include "shape.hpp"

namespace kiln {

template <std::size_t Cap> struct loop_layout {
  int rank = 0;
  std::array<std::int64_t, max_rank> size{};
  std::array<bool, max_rank> dynamic{};
  std::array<std::array<std::int64_t, max_rank>, Cap> stride{};  // per leaf, per loop dim
};

// Leaf shapes `leaves[0 .. count)` read while iterating over shape `s`.
template <std::size_t Cap>
constexpr loop_layout<Cap> plan_loop(const shape& s, const std::array<shape, Cap>& leaves, int count) {
  std::array<std::array<std::int64_t, max_rank>, Cap> strides{};
  for (int l = 0; l < count; ++l) {
    const shape& t = leaves[std::size_t(l)];
    std::int64_t stride = 1;
    for (int d = s.rank - 1; d >= 0; --d) {
      const int td = d - (s.rank - t.rank);
      if (td < 0) continue;  // a missing leading dim is broadcast: stride 0
      const bool broadcast = t.dim[td] == 1 && s.dim[d] != 1;
      strides[std::size_t(l)][std::size_t(d)] = broadcast ? 0 : stride;
      stride *= (t.dim[td] == batch ? 1 : t.dim[td]);
    }
  }
  loop_layout<Cap> c;
  for (int d = 0; d < s.rank; ++d) {
    if (s.dim[d] == 1) continue;  // index always 0
    const bool dyn = s.dim[d] == batch;
    const std::int64_t size = dyn ? 1 : s.dim[d];
    bool merge = c.rank > 0 && !dyn;
    for (int l = 0; merge && l < count; ++l)
      merge = c.stride[std::size_t(l)][std::size_t(c.rank - 1)] == strides[std::size_t(l)][std::size_t(d)] * size;
    if (merge) {
      c.size[std::size_t(c.rank - 1)] *= size;
    } else {
      c.size[std::size_t(c.rank)] = size;
      c.dynamic[std::size_t(c.rank)] = dyn;
      ++c.rank;
    }
    for (int l = 0; l < count; ++l) c.stride[std::size_t(l)][std::size_t(c.rank - 1)] = strides[std::size_t(l)][std::size_t(d)];
  }
  if (c.rank == 0) {
    c.rank = 1;
    c.size[0] = 1;
  }
  return c;
}

}  // namespace kiln
