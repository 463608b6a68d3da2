// Copy kernels for transpose, slice, concat and gather.
#pragma once
#include <cstring>
#include <string>
#include "../../runtime/error.hpp"
#include "fused.hpp"

namespace kiln::cpu_detail {

// out (contiguous, `ext`) <- in at offset `in_off` with per-dim strides `in_stride`
template <class T>
void strided_copy(T* out, const T* in, int rank, const std::int64_t* ext, const std::int64_t* in_stride) {
  if (rank == 0) { *out = *in; return; }
  std::int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= ext[d];
  if (total == 0) return;
  const std::int64_t inner = ext[rank - 1], inner_stride = in_stride[rank - 1];
  std::int64_t idx[max_rank]{};
  for (std::int64_t pos = 0; pos < total; pos += inner) {
    std::int64_t off = 0;
    for (int d = 0; d < rank - 1; ++d) off += idx[d] * in_stride[d];
    const T* src = in + off;
    if (inner_stride == 1) std::memcpy(out + pos, src, std::size_t(inner) * sizeof(T));
    else for (std::int64_t i = 0; i < inner; ++i) out[pos + i] = src[i * inner_stride];
    for (int d = rank - 2; d >= 0; --d) {
      if (++idx[d] < ext[d]) break;
      idx[d] = 0;
    }
  }
}

inline void contiguous_strides(const shape& s, std::int64_t batch_size, std::int64_t* stride) {
  std::int64_t st = 1;
  for (int d = s.rank - 1; d >= 0; --d) {
    stride[d] = st;
    st *= s.extent(d, batch_size);
  }
}

template <class P, int G> struct layout_group {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr const node& n = P::nodes[root];
  using T = ctype<n.type>;

  static void run(const context& ctx) {
    T* out = static_cast<T*>(ctx.values[root]);
    std::int64_t ext[max_rank], in_stride[max_rank];
    for (int d = 0; d < n.out.rank; ++d) ext[d] = n.out.extent(d, ctx.batch);
    if constexpr (n.kind == op::transpose) {
      constexpr const node& x = P::nodes[n.in[0]];
      std::int64_t st[max_rank];
      contiguous_strides(x.out, ctx.batch, st);
      constexpr transpose_attrs t = transpose_attrs::of(n);
      for (int d = 0; d < n.out.rank; ++d) in_stride[d] = st[t.perm[d]];
      strided_copy(out, static_cast<const T*>(ctx.values[n.in[0]]), n.out.rank, ext, in_stride);
    } else if constexpr (n.kind == op::slice) {
      constexpr const node& x = P::nodes[n.in[0]];
      contiguous_strides(x.out, ctx.batch, in_stride);
      constexpr slice_attrs sl = slice_attrs::of(n);
      const T* in = static_cast<const T*>(ctx.values[n.in[0]]) + sl.begin * in_stride[sl.axis];
      strided_copy(out, in, n.out.rank, ext, in_stride);
    } else if constexpr (n.kind == op::concat) {
      // out viewed as [outer, axis, inner]; each part copies its [outer, part_axis, inner] block
      constexpr int axis = concat_attrs::of(n).axis;
      std::int64_t outer = 1, inner = 1;
      for (int d = 0; d < axis; ++d) outer *= ext[d];
      for (int d = axis + 1; d < n.out.rank; ++d) inner *= ext[d];
      const std::int64_t out_axis = ext[axis];
      std::int64_t axis_off = 0;
      for (int i = 0; i < n.n_in; ++i) {
        const node& part = P::nodes[std::size_t(n.in[i])];
        const std::int64_t part_axis = part.out.dim[axis];
        const T* in = static_cast<const T*>(ctx.values[n.in[i]]);
        const std::int64_t block = part_axis * inner;
        for (std::int64_t o = 0; o < outer; ++o)
          std::memcpy(out + (o * out_axis + axis_off) * inner, in + o * block, std::size_t(block) * sizeof(T));
        axis_off += part_axis;
      }
    }
  }
};

template <class P, int G> struct gather_group {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr const node& n = P::nodes[root];
  static constexpr const node& params = P::nodes[n.in[0]];
  static constexpr const node& indices = P::nodes[n.in[1]];
  using T = ctype<n.type>;
  using I = ctype<indices.type>;

  static void run(const context& ctx) {
    T* out = static_cast<T*>(ctx.values[root]);
    const T* src = static_cast<const T*>(ctx.values[n.in[0]]);
    const I* idx = static_cast<const I*>(ctx.values[n.in[1]]);
    constexpr gather_attrs ga = gather_attrs::of(n);
    const int axis = ga.axis;
    const bool per_row = ga.batch_dims == 1;
    // params viewed as [rows (batch_dims), outer, axis, inner]; indices as [rows, count]
    std::int64_t rows = 1, outer = 1, inner = 1, count = 1;
    const std::int64_t axis_size = params.out.dim[axis];
    for (int d = 0; d < axis; ++d) {
      if (per_row && d == 0) rows = params.out.extent(0, ctx.batch);
      else outer *= params.out.extent(d, ctx.batch);
    }
    for (int d = axis + 1; d < params.out.rank; ++d) inner *= params.out.extent(d, ctx.batch);
    for (int d = per_row ? 1 : 0; d < indices.out.rank; ++d) count *= indices.out.extent(d, ctx.batch);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t j = 0; j < count; ++j) {
          const std::int64_t i = std::int64_t(idx[r * count + j]);
          if (i < 0 || i >= axis_size)
            throw error("kiln: gather: index " + std::to_string(i) + " is out of range [0, " + std::to_string(axis_size) +
                        ") for params " + std::string(to_text(params.out).view()) + (params.name.empty() ? "" : " ('" + std::string(params.name.view()) + "')"));
          std::memcpy(out + ((r * outer + o) * count + j) * inner, src + ((r * outer + o) * axis_size + i) * inner,
                      std::size_t(inner) * sizeof(T));
        }
  }
};

}  // namespace kiln::cpu_detail
