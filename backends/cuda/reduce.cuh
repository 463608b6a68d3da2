// Reductions out[a, c] = reduce_r in[a, r, c] on the GPU, with the elementwise producer of `in`
// evaluated inline (a fused_plan expression). No atomics: every output is combined in an order
// fixed by the shape alone, so results are bitwise reproducible from run to run and from one
// GPU model to another.
//
//  - C == 1 (rows): a warp (R <= 1024) or a whole block per output, lanes striding over r, then
//    a shuffle tree and, for blocks, a tree over the warps.
//  - C > 1 (columns): one thread per output, r walked in order (reads coalesce across c).
//  - Too few outputs to fill a GPU and a long R: R is cut into `chunks` pieces whose partial
//    results go to scratch, then a second pass reduces those (chunks depends on the shape only).
#pragma once
#include <cstdint>
#include <limits>
#include "fused.cuh"

namespace kiln::cuda_detail {

// Running value of a reduction; `index` is only used by argmax.
template <class T> struct reduce_acc {
  T value;
  std::int32_t index;
};

// Kind is the combining op: reduce_sum (also for mean), reduce_max, reduce_min or argmax.
template <op Kind, class T> struct reducer {
  static constexpr std::int32_t no_index = std::numeric_limits<std::int32_t>::max();
  __device__ __forceinline__ static reduce_acc<T> identity() {
    if constexpr (Kind == op::reduce_max || Kind == op::argmax) return {std::numeric_limits<T>::lowest(), no_index};
    else if constexpr (Kind == op::reduce_min) return {std::numeric_limits<T>::max(), no_index};
    else return {T(0), no_index};
  }
  // Same comparisons as the CPU (b > a keeps a NaN out unless it came first).
  __device__ __forceinline__ static reduce_acc<T> combine(reduce_acc<T> a, reduce_acc<T> b) {
    if constexpr (Kind == op::reduce_max) return {b.value > a.value ? b.value : a.value, 0};
    else if constexpr (Kind == op::reduce_min) return {b.value < a.value ? b.value : a.value, 0};
    else if constexpr (Kind == op::argmax) {
      // first largest: the later candidate wins only when strictly larger or equal with a smaller index
      const bool take = b.value > a.value || (b.value == a.value && b.index < a.index);
      return take ? b : a;
    } else return {T(a.value + b.value), 0};
  }
  __device__ __forceinline__ static reduce_acc<T> shuffle_xor(reduce_acc<T> a, int mask) {
    return {__shfl_xor_sync(0xffffffffu, a.value, mask), __shfl_xor_sync(0xffffffffu, a.index, mask)};
  }
  template <class Out> __device__ __forceinline__ static Out finish(reduce_acc<T> a, std::int64_t mean_count) {
    if constexpr (Kind == op::argmax) return Out(a.index == no_index ? 0 : a.index);
    else if (mean_count > 0) return Out(a.value / T(mean_count));
    else return Out(a.value);
  }
};

// Rows: one group of `group_threads` (32 or 256) per output o = (a, chunk).
template <op Kind, class E, class Args, class Out>
__global__ void __launch_bounds__(block_threads)
    reduce_rows_kernel(Out* __restrict__ out, const Args args, std::int64_t outputs, std::int64_t R, std::int64_t chunks,
                       std::int64_t chunk_len, std::int64_t mean_count, int group_threads) {
  using T = value_t<E>;
  using red = reducer<Kind, T>;
  __shared__ reduce_acc<T> warp_result[block_threads / 32];
  const int lane = int(threadIdx.x) % group_threads;
  const int groups_per_block = block_threads / group_threads;
  const std::int64_t first = std::int64_t(blockIdx.x) * groups_per_block + int(threadIdx.x) / group_threads;
  // Every thread of a block runs the same number of iterations, so the barriers below are safe.
  const std::int64_t rounds = (outputs + std::int64_t(gridDim.x) * groups_per_block - 1) / (std::int64_t(gridDim.x) * groups_per_block);
  for (std::int64_t round = 0; round < rounds; ++round) {
    const std::int64_t o = first + round * std::int64_t(gridDim.x) * groups_per_block;
    reduce_acc<T> acc = red::identity();
    if (o < outputs) {
      const std::int64_t a = o / chunks, r0 = (o % chunks) * chunk_len;
      const std::int64_t r1 = r0 + chunk_len < R ? r0 + chunk_len : R;
      for (std::int64_t r = r0 + lane; r < r1; r += group_threads)
        acc = red::combine(acc, {value_at<E>(args, a * R + r), std::int32_t(r)});
    }
KILN_UNROLL
    for (int mask = 16; mask > 0; mask >>= 1) acc = red::combine(acc, red::shuffle_xor(acc, mask));
    if (group_threads > 32) {
      if (threadIdx.x % 32 == 0) warp_result[threadIdx.x / 32] = acc;
      __syncthreads();
      if (threadIdx.x < 32) {
        acc = threadIdx.x < block_threads / 32 ? warp_result[threadIdx.x] : red::identity();
KILN_UNROLL
        for (int mask = 16; mask > 0; mask >>= 1) acc = red::combine(acc, red::shuffle_xor(acc, mask));
      }
      __syncthreads();
    }
    if (lane == 0 && o < outputs) out[o] = red::template finish<Out>(acc, mean_count);
  }
}

// Columns: one thread per output t = (a, chunk, c), r walked in order.
template <op Kind, class E, class Args, class Out>
__global__ void __launch_bounds__(block_threads)
    reduce_columns_kernel(Out* __restrict__ out, const Args args, std::int64_t outputs, std::int64_t R, std::int64_t C,
                          std::int64_t chunks, std::int64_t chunk_len, std::int64_t mean_count) {
  using T = value_t<E>;
  using red = reducer<Kind, T>;
  const std::int64_t step = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < outputs; t += step) {
    const std::int64_t c = t % C, o = t / C;
    const std::int64_t a = o / chunks, r0 = (o % chunks) * chunk_len;
    const std::int64_t r1 = r0 + chunk_len < R ? r0 + chunk_len : R;
    reduce_acc<T> acc = red::identity();
    for (std::int64_t r = r0; r < r1; ++r) acc = red::combine(acc, {value_at<E>(args, (a * R + r) * C + c), std::int32_t(r)});
    out[t] = red::template finish<Out>(acc, mean_count);
  }
}

struct reduce_shape {
  std::int64_t A = 1, R = 1, C = 1;
};

// How R is cut; a function of the shape only (never of the device), for reproducibility.
struct reduce_split {
  std::int64_t chunks = 1, chunk_len = 1;
};
template <op Kind> constexpr reduce_split split_for(const reduce_shape& s) {
  reduce_split sp{1, s.R > 0 ? s.R : 1};
  if (Kind == op::argmax) return sp;
  const std::int64_t outputs = s.A * s.C;
  std::int64_t want = 1;
  if (s.C == 1 && outputs < 512 && s.R > 16384) want = (s.R + 8191) / 8192;
  else if (s.C > 1 && outputs < 65536 && s.R > 256) want = std::min((s.R + 63) / 64, (65536 + outputs - 1) / outputs);
  want = std::min<std::int64_t>(want, 1024);
  if (want <= 1) return sp;
  sp.chunk_len = (s.R + want - 1) / want;
  sp.chunks = (s.R + sp.chunk_len - 1) / sp.chunk_len;
  return sp;
}
template <class T> constexpr std::size_t scratch_for(const reduce_shape& s, const reduce_split& sp) {
  return sp.chunks > 1 ? std::size_t(s.A * sp.chunks * s.C) * sizeof(T) : 0;
}

template <op Kind, class E, class Args, class Out>
void launch_reduce_pass(Out* out, const Args& args, const reduce_shape& s, const reduce_split& sp, std::int64_t mean_count,
                        const launch_context& ctx) {
  const std::int64_t outputs = s.A * sp.chunks * s.C;
  if (outputs <= 0) return;
  using CE = canonical_t<E>;
  using CA = canonical_args_t<Args>;
  if (s.C == 1) {
    const int group_threads = sp.chunk_len <= 1024 ? 32 : block_threads;
    const std::int64_t blocks = (outputs * group_threads + block_threads - 1) / block_threads;
    const int grid = int(std::min<std::int64_t>(blocks, std::int64_t(ctx.max_blocks)));
    reduce_rows_kernel<Kind, CE, CA, Out><<<grid, block_threads, 0, ctx.stream>>>(out, args, outputs, s.R, sp.chunks, sp.chunk_len,
                                                                                     mean_count, group_threads);
  } else {
    reduce_columns_kernel<Kind, CE, CA, Out><<<grid_for(outputs, ctx.max_blocks), block_threads, 0, ctx.stream>>>(
        out, args, outputs, s.R, s.C, sp.chunks, sp.chunk_len, mean_count);
  }
  KILN_CUDA_LAUNCHED("reduction kernel launch");
}

// One reduction node: in-expression `E` over [A, R, C] into `out`, through scratch if split.
template <op Kind, class E, class Args, class Out>
void launch_reduction(Out* out, const Args& args, const reduce_shape& s, bool mean, void* scratch, const launch_context& ctx) {
  using T = value_t<E>;
  const reduce_split sp = split_for<Kind>(s);
  const std::int64_t mean_count = mean ? (s.R > 0 ? s.R : 1) : 0;
  if (sp.chunks == 1) {
    launch_reduce_pass<Kind, E>(out, args, s, sp, mean_count, ctx);
    return;
  }
  T* partial = static_cast<T*>(scratch);
  launch_reduce_pass<Kind, E>(partial, args, s, sp, 0, ctx);
  using partial_expr = load<0, dtype_of<T>()>;
  fused_args<1, 1, 0> partial_args;
  partial_args.leaf[0] = partial;
  partial_args.extent[0] = s.A * sp.chunks * s.C;
  partial_args.stride[0][0] = 1;
  const reduce_shape second{s.A, sp.chunks, s.C};
  launch_reduce_pass<Kind, partial_expr>(out, partial_args, second, reduce_split{1, sp.chunks}, mean_count, ctx);
}

template <class P, int G> struct reduction_plan {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr node r = P::nodes[std::size_t(root)];
  static constexpr int X = r.in[0];
  using input = fused_plan<P, G, X, X>;
  using T = typename input::out_t;
  using Out = ctype<r.type>;
  static constexpr op combine_kind = r.kind == op::reduce_mean ? op::reduce_sum : r.kind;

  static reduce_shape shape_at(std::int64_t batch_size) {
    constexpr node x = P::nodes[std::size_t(X)];
    reduce_shape s;
    for (int d = 0; d < x.out.rank; ++d) {
      const std::int64_t e = x.out.extent(d, batch_size);
      if (d < reduce_attrs::of(r).first) s.A *= e;
      else if (d <= reduce_attrs::of(r).last) s.R *= e;
      else s.C *= e;
    }
    return s;
  }
  static std::size_t scratch_bytes(std::int64_t batch_size) {
    const reduce_shape s = shape_at(batch_size);
    return scratch_for<T>(s, split_for<combine_kind>(s));
  }
  static void launch(const launch_context& ctx, void* scratch) {
    const reduce_shape s = shape_at(ctx.batch);
    // argmax carries 32-bit indices on the device (the CPU: 64-bit): refuse what they cannot hold.
    if (r.kind == op::argmax && s.R >= std::int64_t(std::numeric_limits<std::int32_t>::max()))
      throw error("kiln: argmax over " + std::to_string(s.R) + " elements: the CUDA backend's indices are 32-bit (at most 2147483646 elements)");
    launch_reduction<combine_kind, typename input::expr>(static_cast<Out*>(ctx.values[root]), input::make_args(ctx.values, ctx.batch), s,
                                                         r.kind == op::reduce_mean, scratch, ctx);
  }
};

}  // namespace kiln::cuda_detail
