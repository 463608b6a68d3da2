// Copy kernels for transpose, slice and concat, and the gather kernel. Elements are moved as
// opaque 1-, 4- or 8-byte words, so one kernel serves every dtype of that size.
#pragma once
#include <cstdint>
#include <string>
#include "fused.cuh"

namespace kiln::cuda_detail {

template <std::size_t Bytes> struct word_of;
template <> struct word_of<1> { using type = std::uint8_t; };
template <> struct word_of<4> { using type = std::uint32_t; };
template <> struct word_of<8> { using type = std::uint64_t; };
template <class T> using word_t = typename word_of<sizeof(T)>::type;

// out[offset_out + sum idx_d * out_stride_d] = in[offset_in + sum idx_d * in_stride_d] over `extent`.
struct copy_desc {
  int rank = 0;
  std::int64_t total = 0;
  std::int64_t extent[max_rank]{};
  std::int64_t out_stride[max_rank]{};
  std::int64_t in_stride[max_rank]{};
};

template <class W>
__global__ void __launch_bounds__(block_threads) strided_copy_kernel(W* __restrict__ out, const W* __restrict__ in, const copy_desc d) {
  const std::int64_t step = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < d.total; i += step) {
    std::int64_t rest = i, o = 0, s = 0;
    for (int k = d.rank - 1; k >= 0; --k) {
      const std::int64_t idx = k > 0 ? rest % d.extent[k] : rest;
      rest = k > 0 ? rest / d.extent[k] : 0;
      o += idx * d.out_stride[k];
      s += idx * d.in_stride[k];
    }
    out[o] = in[s];
  }
}

template <class T> void strided_copy(T* out, const T* in, const copy_desc& d, const launch_context& ctx) {
  if (d.total <= 0) return;
  using W = word_t<T>;
  strided_copy_kernel<W><<<grid_for(d.total, ctx.max_blocks), block_threads, 0, ctx.stream>>>(
      reinterpret_cast<W*>(out), reinterpret_cast<const W*>(in), d);
  KILN_CUDA_LAUNCHED("copy kernel launch");
}

inline void contiguous_strides(const shape& s, std::int64_t batch_size, std::int64_t* stride) {
  std::int64_t st = 1;
  for (int d = s.rank - 1; d >= 0; --d) {
    stride[d] = st;
    st *= s.extent(d, batch_size);
  }
}

template <class P, int G> struct layout_plan {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr node n = P::nodes[std::size_t(root)];
  using T = ctype<n.type>;

  static void launch(const launch_context& ctx) {
    T* out = static_cast<T*>(ctx.values[root]);
    copy_desc d;
    d.rank = n.out.rank;
    d.total = n.out.elements(ctx.batch);
    for (int k = 0; k < d.rank; ++k) d.extent[k] = n.out.extent(k, ctx.batch);
    if constexpr (n.kind == op::transpose || n.kind == op::slice) {
      constexpr node x = P::nodes[std::size_t(n.in[0])];
      contiguous_strides(n.out, ctx.batch, d.out_stride);
      std::int64_t x_stride[max_rank]{};
      contiguous_strides(x.out, ctx.batch, x_stride);
      const T* in = static_cast<const T*>(ctx.values[n.in[0]]);
      if constexpr (n.kind == op::transpose) {
        for (int k = 0; k < d.rank; ++k) d.in_stride[k] = x_stride[transpose_attrs::of(n).perm[k]];
      } else {
        for (int k = 0; k < d.rank; ++k) d.in_stride[k] = x_stride[k];
        in += slice_attrs::of(n).begin * x_stride[slice_attrs::of(n).axis];
      }
      strided_copy(out, in, d, ctx);
    } else {
      static_assert(n.kind == op::concat);
      // out as [outer, axis, inner]; each part is a [outer, part_axis * inner] block of it
      constexpr int axis = concat_attrs::of(n).axis;
      std::int64_t outer = 1, inner = 1;
      for (int k = 0; k < axis; ++k) outer *= d.extent[k];
      for (int k = axis + 1; k < n.out.rank; ++k) inner *= d.extent[k];
      const std::int64_t out_axis = d.extent[axis];
      std::int64_t axis_off = 0;
      for (int i = 0; i < n.n_in; ++i) {
        const std::int64_t part_axis = P::nodes[std::size_t(n.in[i])].out.dim[axis];
        copy_desc part;
        part.rank = 2;
        part.extent[0] = outer;
        part.extent[1] = part_axis * inner;
        part.total = outer * part_axis * inner;
        part.out_stride[0] = out_axis * inner;
        part.out_stride[1] = 1;
        part.in_stride[0] = part_axis * inner;
        part.in_stride[1] = 1;
        strided_copy(out + axis_off * inner, static_cast<const T*>(ctx.values[n.in[i]]), part, ctx);
        axis_off += part_axis;
      }
    }
  }
};

// ---- gather -------------------------------------------------------------------------------------

// The first out-of-range index a run met, reported by the host after the run.
struct gather_fault {
  unsigned long long flag;  // 0 = none
  long long index;
  int group;
};

struct gather_desc {
  std::int64_t rows = 1, outer = 1, count = 1, inner = 1, axis_size = 1;
  int group = -1;
};

template <class W, class I>
__global__ void __launch_bounds__(block_threads)
    gather_kernel(W* __restrict__ out, const W* __restrict__ params, const I* __restrict__ indices, const gather_desc d, gather_fault* fault) {
  const std::int64_t total = d.rows * d.outer * d.count * d.inner;
  const std::int64_t step = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const std::int64_t k = t % d.inner, rest = t / d.inner;
    const std::int64_t j = rest % d.count, ro = rest / d.count;  // ro = r * outer + o
    const std::int64_t r = ro / d.outer;
    const std::int64_t i = std::int64_t(indices[r * d.count + j]);
    if (i < 0 || i >= d.axis_size) {
      // Zeros go out (as TensorFlow on GPUs); the host turns the record into a kiln::error.
      if (atomicCAS(&fault->flag, 0ull, 1ull) == 0ull) {
        fault->index = i;
        fault->group = d.group;
      }
      out[t] = W(0);
    } else {
      out[t] = params[(ro * d.axis_size + i) * d.inner + k];
    }
  }
}

template <class P, int G> struct gather_plan {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr node n = P::nodes[std::size_t(root)];
  static constexpr node params = P::nodes[std::size_t(n.in[0])];
  static constexpr node indices = P::nodes[std::size_t(n.in[1])];
  using T = ctype<n.type>;
  using I = ctype<indices.type>;

  static void launch(const launch_context& ctx, gather_fault* fault) {
    // params as [rows (batch_dims), outer, axis, inner]; indices as [rows, count]
    const int axis = gather_attrs::of(n).axis;
    const bool per_row = gather_attrs::of(n).batch_dims == 1;
    gather_desc d;
    d.group = G;
    d.axis_size = params.out.dim[axis];
    for (int k = 0; k < axis; ++k) {
      if (per_row && k == 0) d.rows = params.out.extent(0, ctx.batch);
      else d.outer *= params.out.extent(k, ctx.batch);
    }
    for (int k = axis + 1; k < params.out.rank; ++k) d.inner *= params.out.extent(k, ctx.batch);
    for (int k = per_row ? 1 : 0; k < indices.out.rank; ++k) d.count *= indices.out.extent(k, ctx.batch);
    const std::int64_t total = d.rows * d.outer * d.count * d.inner;
    if (total <= 0) return;
    using W = word_t<T>;
    gather_kernel<W, I><<<grid_for(total, ctx.max_blocks), block_threads, 0, ctx.stream>>>(
        static_cast<W*>(ctx.values[root]), static_cast<const W*>(ctx.values[n.in[0]]), static_cast<const I*>(ctx.values[n.in[1]]), d, fault);
    KILN_CUDA_LAUNCHED("gather kernel launch");
  }

  static std::string describe(long long index) {
    return "kiln: gather: index " + std::to_string(index) + " is out of range [0, " + std::to_string(params.out.dim[gather_attrs::of(n).axis]) +
           ") for params " + std::string(to_text(params.out).view()) +
           (params.name.empty() ? "" : " ('" + std::string(params.name.view()) + "')");
  }
};

}  // namespace kiln::cuda_detail
