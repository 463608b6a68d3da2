// One loop per fusion group: the group's expression is inlined from the node array at compile
// time, broadcasting becomes per-leaf strides, and dimensions that every leaf walks contiguously
// are merged so that the inner loop is as long as possible (and SIMD when the math allows).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include "../../graph/program.hpp"
#include "../../ops/elementwise.hpp"
#include "packet_math.hpp"
#include "parallel.hpp"

namespace kiln::cpu_detail {

struct context {
  void* const* values;  // data pointer of every node that has storage
  std::int64_t batch;
};

template <std::size_t L> struct leaf_state {
  std::array<const void*, L> ptr{};
  std::array<std::int64_t, L> off{};
};

// Loop dims after dropping size-1 dims and merging contiguous runs; extent = size * batch^dynamic.
struct loop_dims {
  int rank = 1;
  std::int64_t size[max_rank]{1};
  bool dynamic[max_rank]{};
};

// The expression rooted at `Root` of group `G`, iterated over the shape of node `ShapeNode`
// (the root itself, or the variable an assign writes).
template <class P, int G, int Root, int ShapeNode> struct fused_expr {
  static constexpr const auto& nodes = P::nodes;
  static constexpr const auto& plan = P::plan;
  static constexpr shape S = nodes[ShapeNode].out;
  using out_t = ctype<nodes[Root].type>;

  struct leaf_list {
    int count = 0;
    std::array<int, P::N + 1> node{};
    constexpr int index_of(int n) const {
      for (int i = 0; i < count; ++i)
        if (node[std::size_t(i)] == n) return i;
      return -1;
    }
  };
  static constexpr leaf_list all_leaves = [] {
    leaf_list l;
    std::array<bool, P::N + 1> seen{};
    auto visit = [&](auto& self, int n) -> void {
      if (seen[std::size_t(n)]) return;
      seen[std::size_t(n)] = true;
      const node& x = nodes[std::size_t(n)];
      if (!plan.reads_inline(n, G) || x.kind == op::iota) {
        l.node[std::size_t(l.count++)] = n;
        return;
      }
      if (is_immediate(x.kind)) return;
      for (int k = 0; k < x.n_in; ++k) self(self, x.in[k]);
    };
    visit(visit, Root);
    return l;
  }();
  static constexpr int L = all_leaves.count;

  // Stride of leaf l along each dim of S (0 where the leaf is broadcast).
  static constexpr std::array<std::array<std::int64_t, max_rank>, std::size_t(L)> strides = [] {
    std::array<std::array<std::int64_t, max_rank>, std::size_t(L)> st{};
    for (int l = 0; l < L; ++l) {
      const shape& t = nodes[std::size_t(all_leaves.node[std::size_t(l)])].out;
      std::int64_t stride = 1;
      for (int d = S.rank - 1; d >= 0; --d) {
        const int td = d - (S.rank - t.rank);
        if (td < 0) { st[std::size_t(l)][std::size_t(d)] = 0; continue; }
        const bool broadcast = t.dim[td] == 1 && S.dim[d] != 1;
        st[std::size_t(l)][std::size_t(d)] = broadcast ? 0 : stride;
        stride *= (t.dim[td] == batch ? 1 : t.dim[td]);
      }
    }
    return st;
  }();

  struct collapsed_t {
    loop_dims dims;
    std::array<std::array<std::int64_t, max_rank>, std::size_t(L)> stride{};
  };
  static constexpr collapsed_t collapsed = [] {
    collapsed_t c;
    c.dims.rank = 0;
    for (int d = 0; d < S.rank; ++d) {
      if (S.dim[d] == 1) continue;  // index always 0
      const bool dyn = S.dim[d] == batch;
      const std::int64_t size = dyn ? 1 : S.dim[d];
      bool merge = c.dims.rank > 0 && !dyn;
      for (int l = 0; merge && l < L; ++l)
        merge = c.stride[std::size_t(l)][std::size_t(c.dims.rank - 1)] == strides[std::size_t(l)][std::size_t(d)] * size;
      if (merge) {
        c.dims.size[c.dims.rank - 1] *= size;
      } else {
        c.dims.size[c.dims.rank] = size;
        c.dims.dynamic[c.dims.rank] = dyn;
        ++c.dims.rank;
      }
      for (int l = 0; l < L; ++l) c.stride[std::size_t(l)][std::size_t(c.dims.rank - 1)] = strides[std::size_t(l)][std::size_t(d)];
    }
    if (c.dims.rank == 0) {
      c.dims.rank = 1;
      c.dims.size[0] = 1;
    }
    return c;
  }();
  static constexpr int R = collapsed.dims.rank;

  template <int Leaf> static constexpr bool contiguous = collapsed.stride[std::size_t(Leaf)][std::size_t(R - 1)] != 0;

  static constexpr bool packet_ok = [] {
    bool ok = true;
    std::array<bool, P::N + 1> seen{};
    auto visit = [&](auto& self, int n) -> void {
      if (seen[std::size_t(n)]) return;
      seen[std::size_t(n)] = true;
      const node& x = nodes[std::size_t(n)];
      if (x.type != dtype::f32) ok = false;
      if (!plan.reads_inline(n, G)) return;
      if (!has_packet_math(x.kind)) ok = false;
      for (int k = 0; k < x.n_in; ++k) self(self, x.in[k]);
    };
    visit(visit, Root);
    return ok;
  }();

  static constexpr std::int64_t cost = [] {
    std::int64_t c = 0;
    std::array<bool, P::N + 1> seen{};
    auto visit = [&](auto& self, int n) -> void {
      if (seen[std::size_t(n)] || !plan.reads_inline(n, G)) { c += 1; return; }
      seen[std::size_t(n)] = true;
      c += cost_of(nodes[std::size_t(n)].kind);
      for (int k = 0; k < nodes[std::size_t(n)].n_in; ++k) self(self, nodes[std::size_t(n)].in[k]);
    };
    visit(visit, Root);
    return c;
  }();

  using state = leaf_state<std::size_t(L)>;

  template <int Nd> static KILN_INLINE ctype<nodes[Nd].type> eval(const state& st, std::int64_t c) {
    constexpr node n = nodes[Nd];
    using T = ctype<n.type>;
    if constexpr (!plan.reads_inline(Nd, G)) {
      constexpr int l = all_leaves.index_of(Nd);
      return static_cast<const T*>(st.ptr[l])[st.off[l] + (contiguous<l> ? c : 0)];
    } else if constexpr (n.kind == op::scalar || n.kind == op::fill) {
      return T(n.value);
    } else if constexpr (n.kind == op::iota) {
      constexpr int l = all_leaves.index_of(Nd);
      return T(n.value + n.value2 * double(st.off[l] + (contiguous<l> ? c : 0)));
    } else if constexpr (n.kind == op::cast) {
      return static_cast<T>(eval<n.in[0]>(st, c));
    } else if constexpr (n.kind == op::select) {
      return eval<n.in[0]>(st, c) ? eval<n.in[1]>(st, c) : eval<n.in[2]>(st, c);
    } else if constexpr (n.n_in == 1) {
      return elementwise_math<n.kind>::apply(eval<n.in[0]>(st, c));
    } else {
      return elementwise_math<n.kind>::apply(eval<n.in[0]>(st, c), eval<n.in[1]>(st, c));
    }
  }

  template <int Nd> static KILN_INLINE packet_f32 evalp(const state& st, std::int64_t c) {
    constexpr node n = nodes[Nd];
    if constexpr (!plan.reads_inline(Nd, G)) {
      constexpr int l = all_leaves.index_of(Nd);
      const float* p = static_cast<const float*>(st.ptr[l]) + st.off[l];
      if constexpr (contiguous<l>) return ei::ploadu<packet_f32>(p + c);
      else return ei::pset1<packet_f32>(*p);
    } else if constexpr (n.kind == op::scalar || n.kind == op::fill) {
      return ei::pset1<packet_f32>(float(n.value));
    } else if constexpr (n.kind == op::iota) {
      constexpr int l = all_leaves.index_of(Nd);
      if constexpr (contiguous<l>)
        return ei::padd(ei::pset1<packet_f32>(float(n.value + n.value2 * double(st.off[l] + c))),
                        ei::pmul(ei::pset1<packet_f32>(float(n.value2)), ei::plset<packet_f32>(0.f)));
      else return ei::pset1<packet_f32>(float(n.value + n.value2 * double(st.off[l])));
    } else if constexpr (n.n_in == 1) {
      return packet_apply<n.kind>(evalp<n.in[0]>(st, c));
    } else {
      return packet_apply<n.kind>(evalp<n.in[0]>(st, c), evalp<n.in[1]>(st, c));
    }
  }

  static std::int64_t elements(std::int64_t batch_size) { return S.elements(batch_size); }

  // Writes elements [begin, end) of the expression (row-major over S) to dst[0 .. end - begin).
  static void run(const context& ctx, out_t* dst, std::int64_t begin, std::int64_t end) {
    std::int64_t ext[max_rank];
    for (int d = 0; d < R; ++d) ext[d] = collapsed.dims.size[d] * (collapsed.dims.dynamic[d] ? ctx.batch : 1);
    const std::int64_t inner = ext[R - 1];
    if (inner == 0) return;
    state st;
    for (int l = 0; l < L; ++l) st.ptr[std::size_t(l)] = ctx.values[all_leaves.node[std::size_t(l)]];
    std::int64_t row = begin / inner, col = begin % inner, pos = begin;
    while (pos < end) {
      const std::int64_t col_end = std::min(inner, col + (end - pos));
      if constexpr (R > 1) {
        for (int l = 0; l < L; ++l) st.off[std::size_t(l)] = 0;
        std::int64_t r = row;
        for (int d = R - 2; d >= 0; --d) {
          const std::int64_t idx = r % ext[d];
          r /= ext[d];
          for (int l = 0; l < L; ++l) st.off[std::size_t(l)] += idx * collapsed.stride[std::size_t(l)][std::size_t(d)];
        }
      }
      out_t* out = dst + (pos - begin);
      std::int64_t c = col;
      if constexpr (packet_ok) {
        for (; c + packet_width <= col_end; c += packet_width) ei::pstoreu(out + (c - col), evalp<Root>(st, c));
      }
      for (; c < col_end; ++c) out[c - col] = eval<Root>(st, c);
      pos += col_end - col;
      col = 0;
      ++row;
    }
  }

  static void run_all(const context& ctx, out_t* dst) {
    parallel_range(elements(ctx.batch), cost, [&](std::int64_t b, std::int64_t e) { run(ctx, dst + b, b, e); });
  }
};

}  // namespace kiln::cpu_detail
