// One loop per fusion group: the group's expression is inlined from the node array at compile
// time, broadcasting becomes per-leaf strides, and dimensions that every leaf walks contiguously
// are merged so that the inner loop is as long as possible (and SIMD when the math allows).
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include "../../graph/loop_layout.hpp"
#include "../../graph/program.hpp"
#include "../../ops/elementwise.hpp"
#include "packet_math.hpp"
#include "parallel.hpp"

namespace kiln::cpu_detail {

struct context {
  void* const* values;  // data pointer of every node that has storage
  std::int64_t batch;
};

// Where large arena buffers start. A streaming loop whose output lies a little (16..~256 bytes)
// ahead of an input modulo 4 KiB loses up to a third of its speed to 4K aliasing (a load is
// wrongly predicted to depend on an earlier store to the same page offset). Large user arrays
// usually start near a page start (glibc's mmapped chunks at +16, aligned allocations at +0 or
// +64), so every large arena buffer starts half a page further on: far from those inputs, and
// at the same page offset as the other large arena buffers it reads or writes.
inline constexpr std::int64_t page_bytes = 4096, page_phase = 2048, large_buffer_bytes = 1 << 16;
// Padding to reserve for a buffer of `bytes` so that place_buffer can always move it into phase.
constexpr std::int64_t buffer_padding(std::int64_t bytes) { return bytes >= large_buffer_bytes ? page_bytes : 0; }
// Offset at or after `off` (from `base`) where a buffer of `bytes` starts.
inline std::int64_t place_buffer(const std::byte* base, std::int64_t off, std::int64_t bytes) {
  if (bytes < large_buffer_bytes) return off;
  const auto at = std::int64_t((reinterpret_cast<std::uintptr_t>(base) + std::uintptr_t(off)) % std::uintptr_t(page_bytes));
  return off + (page_phase - at + page_bytes) % page_bytes;
}

// How a node of a fused loop evaluates in SIMD: as f32 values, as a lane mask (every bit set where
// true: an f32 comparison, or logic over such masks), or not at all (the loop runs scalar).
enum class lane_form : std::uint8_t { none, value, mask };

template <std::size_t L> struct leaf_state {
  std::array<const void*, L> ptr{};
  std::array<std::int64_t, L> off{};
};
// With one leaf's packet handed over in a register (a matmul's result, never stored).
template <std::size_t L> struct given_leaf_state : leaf_state<L> {
  packet_f32 given;
};

// The expression rooted at `Root` of group `G`, iterated over the shape of node `ShapeNode`
// (the root itself, or the variable an assign writes). With Given >= 0, the packet entry points
// below take the values of leaf `Given` from the caller (a matmul kernel feeding its epilogue
// the packets it has just computed) instead of loading them.
template <class P, int G, int Root, int ShapeNode, int Given = -1> struct fused_expr {
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
  // The leaves as a right-sized array: the only table the loop reads at run time (all_leaves,
  // sized by the whole graph, stays a compile-time value and is not emitted per group).
  static constexpr std::array<int, std::size_t(L)> leaf_nodes = [] {
    std::array<int, std::size_t(L)> a{};
    for (int l = 0; l < L; ++l) a[std::size_t(l)] = all_leaves.node[std::size_t(l)];
    return a;
  }();

  static constexpr loop_layout<std::size_t(L)> collapsed = [] {
    std::array<shape, std::size_t(L)> shapes{};
    for (int l = 0; l < L; ++l) shapes[std::size_t(l)] = nodes[std::size_t(all_leaves.node[std::size_t(l)])].out;
    return plan_loop(S, shapes, L);
  }();
  static constexpr int R = collapsed.rank;

  template <int Leaf> static constexpr bool contiguous = collapsed.stride[std::size_t(Leaf)][std::size_t(R - 1)] != 0;

  // Whether the whole expression runs on packets: every value is f32 and every op has packet
  // math, except that f32 comparisons and the logic over them become lane masks, so that a relu
  // mask or a where() keeps the loop in SIMD. Bool leaves (bytes in memory), comparisons of
  // integers and casts to other types keep the loop scalar.
  static constexpr bool packet_ok = [] {
    std::array<lane_form, P::N + 1> form{};
    std::array<bool, P::N + 1> seen{};
    auto visit = [&](auto& self, int n) -> lane_form {
      if (seen[std::size_t(n)]) return form[std::size_t(n)];
      seen[std::size_t(n)] = true;
      const node& x = nodes[std::size_t(n)];
      auto inputs_are = [&](lane_form want) {
        for (int k = 0; k < x.n_in; ++k)
          if (self(self, x.in[k]) != want) return false;
        return true;
      };
      lane_form f = lane_form::none;
      if (!plan.reads_inline(n, G) || is_immediate(x.kind)) f = x.type == dtype::f32 ? lane_form::value : lane_form::none;
      else if (is_comparison(x.kind)) f = inputs_are(lane_form::value) ? lane_form::mask : lane_form::none;
      else if (is_logical(x.kind)) f = inputs_are(lane_form::mask) ? lane_form::mask : lane_form::none;
      else if (x.kind == op::select)
        f = self(self, x.in[0]) == lane_form::mask && self(self, x.in[1]) == lane_form::value && self(self, x.in[2]) == lane_form::value
                ? lane_form::value : lane_form::none;
      else if (x.kind == op::cast)  // to f32 from f32 or from a mask (true is 1)
        f = x.type == dtype::f32 && self(self, x.in[0]) != lane_form::none ? lane_form::value : lane_form::none;
      else if (x.type == dtype::f32 && has_packet_math(x.kind)) f = inputs_are(lane_form::value) ? lane_form::value : lane_form::none;
      form[std::size_t(n)] = f;
      return f;
    };
    const lane_form root = visit(visit, Root);
    return root == (nodes[Root].type == dtype::boolean ? lane_form::mask : lane_form::value);
  }();
  // Rows of a few static columns (the classes of a small softmax, a [?,2] head) never fill a
  // packet: only the scalar loop is compiled for them.
  static constexpr bool short_rows = !collapsed.dynamic[std::size_t(R - 1)] && collapsed.size[std::size_t(R - 1)] < packet_width;

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

  using state = std::conditional_t<(Given >= 0), given_leaf_state<std::size_t(L)>, leaf_state<std::size_t(L)>>;

  template <int Nd> static KILN_INLINE ctype<nodes[Nd].type> eval(const state& st, std::int64_t c) {
    constexpr node n = nodes[Nd];
    using T = ctype<n.type>;
    if constexpr (!plan.reads_inline(Nd, G)) {
      constexpr int l = all_leaves.index_of(Nd);
      return static_cast<const T*>(st.ptr[l])[st.off[l] + (contiguous<l> ? c : 0)];
    } else if constexpr (n.kind == op::scalar || n.kind == op::fill) {
      return T(immediate_attrs::of(n).value);
    } else if constexpr (n.kind == op::iota) {
      constexpr int l = all_leaves.index_of(Nd);
      return T(iota_attrs::of(n).start + iota_attrs::of(n).step * double(st.off[l] + (contiguous<l> ? c : 0)));
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

  // One packet of the expression at columns [c, c + packet_width). With Tail, only the first
  // `tail` lanes are valid: contiguous leaves are read with masked loads (no access past the
  // row), and the caller stores only those lanes.
  template <int Nd, bool Tail = false> static KILN_INLINE packet_f32 evalp(const state& st, std::int64_t c, std::int64_t tail = 0) {
    constexpr node n = nodes[Nd];
    if constexpr (Nd == Given) {
      return st.given;
    } else if constexpr (!plan.reads_inline(Nd, G)) {
      constexpr int l = all_leaves.index_of(Nd);
      const float* p = static_cast<const float*>(st.ptr[l]) + st.off[l];
      if constexpr (contiguous<l> && Tail) return ploadu_first(p + c, tail);
      else if constexpr (contiguous<l>) return ei::ploadu<packet_f32>(p + c);
      else return ei::pset1<packet_f32>(*p);
    } else if constexpr (n.kind == op::scalar || n.kind == op::fill) {
      return ei::pset1<packet_f32>(float(immediate_attrs::of(n).value));
    } else if constexpr (n.kind == op::iota) {
      constexpr int l = all_leaves.index_of(Nd);
      constexpr iota_attrs iota = iota_attrs::of(n);
      if constexpr (contiguous<l>)
        return ei::padd(ei::pset1<packet_f32>(float(iota.start + iota.step * double(st.off[l] + c))),
                        ei::pmul(ei::pset1<packet_f32>(float(iota.step)), ei::plset<packet_f32>(0.f)));
      else return ei::pset1<packet_f32>(float(iota.start + iota.step * double(st.off[l])));
    } else if constexpr (is_comparison(n.kind)) {
      return packet_compare<n.kind>(evalp<n.in[0], Tail>(st, c, tail), evalp<n.in[1], Tail>(st, c, tail));
    } else if constexpr (n.kind == op::logical_and) {
      return ei::pand(evalp<n.in[0], Tail>(st, c, tail), evalp<n.in[1], Tail>(st, c, tail));
    } else if constexpr (n.kind == op::logical_or) {
      return ei::por(evalp<n.in[0], Tail>(st, c, tail), evalp<n.in[1], Tail>(st, c, tail));
    } else if constexpr (n.kind == op::logical_not) {
      const packet_f32 m = evalp<n.in[0], Tail>(st, c, tail);
      return ei::pxor(m, ei::ptrue(m));
    } else if constexpr (n.kind == op::select) {
      return ei::pselect(evalp<n.in[0], Tail>(st, c, tail), evalp<n.in[1], Tail>(st, c, tail), evalp<n.in[2], Tail>(st, c, tail));
    } else if constexpr (n.kind == op::cast) {
      if constexpr (nodes[n.in[0]].type == dtype::boolean) return ei::pand(evalp<n.in[0], Tail>(st, c, tail), ei::pset1<packet_f32>(1.f));
      else return evalp<n.in[0], Tail>(st, c, tail);
    } else if constexpr (n.n_in == 1) {
      return packet_apply<n.kind>(evalp<n.in[0], Tail>(st, c, tail));
    } else {
      return packet_apply<n.kind>(evalp<n.in[0], Tail>(st, c, tail), evalp<n.in[1], Tail>(st, c, tail));
    }
  }

  // Stores the first n lanes of a packet of the root: f32 values, or a mask as bools.
  template <bool Full> static KILN_INLINE void store_lanes(out_t* p, packet_f32 v, std::int64_t n = packet_width) {
    if constexpr (std::is_same_v<out_t, bool>) {
      alignas(64) float lanes[packet_width];
      ei::pstore(lanes, v);
      for (std::int64_t i = 0; i < (Full ? std::int64_t(packet_width) : n); ++i) p[i] = std::bit_cast<std::uint32_t>(lanes[i]) != 0;
    } else if constexpr (Full) {
      ei::pstoreu(p, v);
    } else {
      pstoreu_first(p, v, n);
    }
  }

  // Offset of leaf l at the start of the row with outer indices idx: strides are compile-time
  // constants (a run-time loop over the stride table went through the stack on every row).
  template <std::size_t l, std::size_t... d> static KILN_INLINE std::int64_t row_offset(const std::int64_t* idx, std::index_sequence<d...>) {
    return (std::int64_t(0) + ... + (idx[d] * collapsed.stride[l][d]));
  }
  template <std::size_t... l> static KILN_INLINE void set_row_offsets(state& st, const std::int64_t* idx, std::index_sequence<l...>) {
    ((st.off[l] = row_offset<l>(idx, std::make_index_sequence<std::size_t(R - 1)>{})), ...);
  }

  static std::int64_t elements(std::int64_t batch_size) { return S.elements(batch_size); }

  // ---- packets handed over by a matmul kernel (Given >= 0) ----
  // Usable when the given leaf has the loop's own shape (so that packet j of a row of the product
  // is packet j of a row of the loop) and rows are long enough for packets at all.
  static constexpr bool takes_given_packets = [] {
    if (Given < 0 || !packet_ok || short_rows) return false;
    const int l = all_leaves.index_of(Given);
    return l >= 0 && nodes[std::size_t(Given)].out == S && collapsed.stride[std::size_t(l)][std::size_t(R - 1)] == 1;
  }();

  // Positions `st` at element `at` (row-major over S) and returns its column within its loop row;
  // the elements from `at` up to the end of that row can then be written with store_given.
  static KILN_INLINE std::int64_t seek(const context& ctx, state& st, std::int64_t at) {
    for (int l = 0; l < L; ++l) st.ptr[std::size_t(l)] = ctx.values[leaf_nodes[std::size_t(l)]];
    if constexpr (R > 1) {
      std::int64_t ext[max_rank];
      for (int d = 0; d < R; ++d) ext[d] = collapsed.size[std::size_t(d)] * (collapsed.dynamic[std::size_t(d)] ? ctx.batch : 1);
      std::int64_t idx[max_rank]{};
      std::int64_t r = at / ext[R - 1];
      for (int d = R - 2; d >= 0; --d) {
        idx[d] = r % ext[d];
        r /= ext[d];
      }
      set_row_offsets(st, idx, std::make_index_sequence<std::size_t(L)>{});
      return at % ext[R - 1];
    } else {
      return at;
    }
  }
  // dst[0 .. n) = the expression at columns [c, c + n) of the row `st` is at, where the given leaf
  // holds `v` (n < packet_width only for a row's last packet).
  template <bool Full> static KILN_INLINE void store_given(state& st, out_t* dst, std::int64_t c, packet_f32 v, std::int64_t n = packet_width) {
    st.given = v;
    if constexpr (Full) store_lanes<true>(dst, evalp<Root>(st, c));
    else store_lanes<false>(dst, evalp<Root, true>(st, c, n), n);
  }

  // Writes elements [begin, end) of the expression (row-major over S) to dst[0 .. end - begin).
  // Rows are walked with an odometer over the outer dims (no division per row); a row's last
  // partial packet runs through masked loads and stores where the ISA has them (AVX, AVX-512),
  // so short rows (a matmul epilogue of 300 columns) never fall back to scalar libm calls.
  static void run(const context& ctx, out_t* dst, std::int64_t begin, std::int64_t end) {
    std::int64_t ext[max_rank];
    for (int d = 0; d < R; ++d) ext[d] = collapsed.size[std::size_t(d)] * (collapsed.dynamic[std::size_t(d)] ? ctx.batch : 1);
    const std::int64_t inner = ext[R - 1];
    if (inner == 0 || begin >= end) return;
    state st;
    for (int l = 0; l < L; ++l) st.ptr[std::size_t(l)] = ctx.values[leaf_nodes[std::size_t(l)]];
    std::int64_t idx[max_rank]{};  // index of the current row along each outer dim
    if constexpr (R > 1) {
      std::int64_t r = begin / inner;
      for (int d = R - 2; d >= 0; --d) {
        idx[d] = r % ext[d];
        r /= ext[d];
      }
    }
    std::int64_t col = begin % inner, pos = begin;
    while (true) {
      const std::int64_t col_end = std::min(inner, col + (end - pos));
      if constexpr (R > 1) set_row_offsets(st, idx, std::make_index_sequence<std::size_t(L)>{});
      out_t* out = dst + (pos - begin) - col;  // out[c] is column c of this row
      std::int64_t c = col;
      if constexpr (packet_ok && !short_rows) {
        for (; c + packet_width <= col_end; c += packet_width) store_lanes<true>(out + c, evalp<Root>(st, c));
        if constexpr (has_masked_tail) {
          // Rows shorter than a packet (a [?] loop over a small batch) go scalar: a masked packet would
          // evaluate every op on all lanes for one or two results.
          if (c < col_end && inner >= packet_width) {
            store_lanes<false>(out + c, evalp<Root, true>(st, c, col_end - c), col_end - c);
            c = col_end;
          }
        }
      }
      for (; c < col_end; ++c) out[c] = eval<Root>(st, c);
      pos += col_end - col;
      if (pos >= end) break;
      col = 0;
      if constexpr (R > 1) {
        for (int d = R - 2; d >= 0; --d) {
          if (++idx[d] < ext[d]) break;
          idx[d] = 0;
        }
      }
    }
  }

  static void run_all(const context& ctx, out_t* dst) {
    parallel_range(elements(ctx.batch), cost, [&](std::int64_t b, std::int64_t e) { run(ctx, dst + b, b, e); });
  }
};

}  // namespace kiln::cpu_detail
