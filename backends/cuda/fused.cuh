// Elementwise fusion groups on the GPU: one kernel per group, generated from the node array.
//
// fused_plan<P, G, Root, ShapeNode> is the host half (it may mention P): it finds the group's
// leaves, gives every leaf a stride per loop dim (0 where the leaf is broadcast), merges dims
// that all leaves walk contiguously (the same analysis as backends/cpu/fused.hpp), and builds the
// expression type of expression.cuh. The kernel half only sees that type and fused_args.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include "../../graph/loop_layout.hpp"
#include "../../graph/program.hpp"
#include "check.cuh"
#include "expression.cuh"

namespace kiln::cuda_detail {

// What every launch needs from the executor.
struct launch_context {
  void* const* values;  // device pointer of every node that has storage
  std::int64_t batch;
  cudaStream_t stream;
  int max_blocks;  // enough resident blocks of 256 threads to fill the device
};

inline constexpr int block_threads = 256;

inline int grid_for(std::int64_t work_items, int max_blocks) {
  const std::int64_t blocks = (work_items + block_threads - 1) / block_threads;
  return int(std::clamp<std::int64_t>(blocks, 1, max_blocks));
}

// ---- kernel ------------------------------------------------------------------------------------

// Grid-stride loop; I is 32-bit whenever the element count allows (cheaper index arithmetic).
// With `skip` (the run's gather fault flag, for assigns) the kernel writes nothing once a gather
// earlier in the run met a bad index: a faulting run leaves the variables as the CPU does.
template <class E, class Args, class I>
__global__ void __launch_bounds__(block_threads)
    fused_kernel(value_t<E>* __restrict__ out, const Args args, I total, const unsigned long long* __restrict__ skip) {
  if (skip && *skip) return;
  const I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < total; i += step) out[i] = value_at<E>(args, i);
}

template <class E, class Args>
void launch_fused(value_t<E>* out, const Args& args, std::int64_t total, cudaStream_t stream, int max_blocks,
                  const unsigned long long* skip = nullptr) {
  if (total <= 0) return;
  using CE = canonical_t<E>;
  using CA = canonical_args_t<Args>;
  const int grid = grid_for(total, max_blocks);
  if (total <= std::int64_t(std::numeric_limits<std::int32_t>::max()))
    fused_kernel<CE, CA, std::uint32_t><<<grid, block_threads, 0, stream>>>(out, args, std::uint32_t(total), skip);
  else
    fused_kernel<CE, CA, std::uint64_t><<<grid, block_threads, 0, stream>>>(out, args, std::uint64_t(total), skip);
  KILN_CUDA_LAUNCHED("fused elementwise kernel launch");
}

// ---- host half: from the node array to an expression type ---------------------------------------

template <class P, int G, int Root, int ShapeNode> struct fused_plan {
  static constexpr shape S = P::nodes[ShapeNode].out;

  struct tables {
    int leaf_count = 0, imm_count = 0;
    std::array<int, P::N + 1> leaf_node{};      // node of each leaf
    std::array<int, P::N + 1> leaf_of{};        // leaf index of each node, -1 if none
    std::array<int, P::N + 1> imm_of{};         // first immediate slot of each node, -1 if none
    std::array<double, 2 * P::N + 2> imm{};     // immediate values
  };
  static constexpr tables table = [] {
    tables t;
    for (auto& x : t.leaf_of) x = -1;
    for (auto& x : t.imm_of) x = -1;
    std::array<bool, P::N + 1> seen{};
    auto visit = [&](auto& self, int n) -> void {
      if (seen[std::size_t(n)]) return;
      seen[std::size_t(n)] = true;
      const node& x = P::nodes[std::size_t(n)];
      const bool inline_read = P::plan.reads_inline(n, G);
      if (!inline_read || x.kind == op::iota) {
        t.leaf_of[std::size_t(n)] = t.leaf_count;
        t.leaf_node[std::size_t(t.leaf_count++)] = n;
      }
      if (!inline_read) return;
      if (x.kind == op::scalar || x.kind == op::fill || x.kind == op::iota) {
        t.imm_of[std::size_t(n)] = t.imm_count;
        if (x.kind == op::iota) {
          t.imm[std::size_t(t.imm_count++)] = iota_attrs::of(x).start;
          t.imm[std::size_t(t.imm_count++)] = iota_attrs::of(x).step;
        } else {
          t.imm[std::size_t(t.imm_count++)] = immediate_attrs::of(x).value;
        }
        return;
      }
      for (int k = 0; k < x.n_in; ++k) self(self, x.in[k]);
    };
    visit(visit, Root);
    return t;
  }();
  static constexpr int L = table.leaf_count;
  static constexpr int K = table.imm_count;

  // Sized at least 1: kernel argument structs cannot hold zero-length arrays.
  static constexpr std::size_t leaf_capacity = std::size_t(L > 0 ? L : 1);
  static constexpr loop_layout<leaf_capacity> collapsed = [] {
    std::array<shape, leaf_capacity> shapes{};
    for (int l = 0; l < L; ++l) shapes[std::size_t(l)] = P::nodes[std::size_t(table.leaf_node[std::size_t(l)])].out;
    return plan_loop(S, shapes, L);
  }();
  static constexpr int R = collapsed.rank;

  using args_t = fused_args<L, R, K>;

  template <int Nd> static constexpr auto build() {
    constexpr node n = P::nodes[std::size_t(Nd)];
    if constexpr (!P::plan.reads_inline(Nd, G)) {
      return std::type_identity<load<table.leaf_of[std::size_t(Nd)], n.type>>{};
    } else if constexpr (n.kind == op::scalar || n.kind == op::fill) {
      return std::type_identity<immediate<n.type, table.imm_of[std::size_t(Nd)]>>{};
    } else if constexpr (n.kind == op::iota) {
      return std::type_identity<arange<table.leaf_of[std::size_t(Nd)], n.type, table.imm_of[std::size_t(Nd)]>>{};
    } else if constexpr (n.n_in == 1) {
      return std::type_identity<apply<n.kind, n.type, typename decltype(build<n.in[0]>())::type>>{};
    } else if constexpr (n.n_in == 2) {
      return std::type_identity<apply<n.kind, n.type, typename decltype(build<n.in[0]>())::type,
                                      typename decltype(build<n.in[1]>())::type>>{};
    } else {
      static_assert(n.kind == op::select, "the only ternary elementwise op is select");
      return std::type_identity<apply<n.kind, n.type, typename decltype(build<n.in[0]>())::type,
                                      typename decltype(build<n.in[1]>())::type, typename decltype(build<n.in[2]>())::type>>{};
    }
  }
  using expr = typename decltype(build<Root>())::type;
  using out_t = value_t<expr>;

  static std::int64_t elements(std::int64_t batch_size) { return S.elements(batch_size); }

  static args_t make_args(void* const* values, std::int64_t batch_size) {
    args_t a;
    for (int l = 0; l < L; ++l) {
      a.leaf[l] = values[table.leaf_node[std::size_t(l)]];
      for (int d = 0; d < R; ++d) {
        // A dynamic dim is the leading one, so its stride never depends on the batch.
        a.stride[l][d] = collapsed.stride[std::size_t(l)][std::size_t(d)];
      }
    }
    for (int d = 0; d < R; ++d) a.extent[d] = collapsed.size[std::size_t(d)] * (collapsed.dynamic[std::size_t(d)] ? batch_size : 1);
    for (int k = 0; k < K; ++k) a.imm[k] = table.imm[std::size_t(k)];
    return a;
  }

  // Writes the whole expression, row-major over S, to `out` (nothing when *skip is set).
  static void launch(const launch_context& ctx, void* out, const unsigned long long* skip = nullptr) {
    launch_fused<expr>(static_cast<out_t*>(out), make_args(ctx.values, ctx.batch), elements(ctx.batch), ctx.stream, ctx.max_blocks, skip);
  }
};

}  // namespace kiln::cuda_detail
