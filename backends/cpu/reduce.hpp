// Reductions of the form out[a, c] = reduce_r in[a, r, c]. The input is read straight from its
// buffer, or, when an elementwise producer was fused in, computed in small chunks on the stack.
// Accumulation order depends only on the shape, never on the thread count.
#pragma once
#include <algorithm>
#include <limits>
#include <type_traits>
#include "fused.hpp"

namespace kiln::cpu_detail {

inline constexpr std::int64_t reduce_chunk = 512;
// Rows up to this long are reduced in blocks of reduce_chunk / short_row rows or more.
inline constexpr std::int64_t short_row = 64;

template <class P, int G> struct reduction {
  static constexpr const node& r = P::nodes[P::plan.groups[G].root];
  static constexpr int X = r.in[0];
  static constexpr const node& x = P::nodes[X];
  static constexpr bool fused_input = P::plan.reads_inline(X, G);
  using in_t = ctype<x.type>;
  using out_t = ctype<r.type>;
  using input = fused_expr<P, G, X, X>;
  static constexpr op kind = r.kind;
  static constexpr reduce_attrs axes = reduce_attrs::of(r);

  // Pointer to input elements [begin, begin + n), n <= reduce_chunk.
  static KILN_INLINE const in_t* source(const context& ctx, in_t* scratch, std::int64_t begin, std::int64_t n) {
    if constexpr (fused_input) {
      input::run(ctx, scratch, begin, begin + n);
      return scratch;
    } else {
      return static_cast<const in_t*>(ctx.values[X]) + begin;
    }
  }

  static constexpr in_t identity() {
    if constexpr (kind == op::reduce_max || kind == op::argmax) return std::numeric_limits<in_t>::lowest();
    else if constexpr (kind == op::reduce_min) return std::numeric_limits<in_t>::max();
    else return in_t(0);
  }
  static KILN_INLINE in_t combine(in_t a, in_t b) {
    if constexpr (kind == op::reduce_max) return b > a ? b : a;
    else if constexpr (kind == op::reduce_min) return b < a ? b : a;
    else return in_t(a + b);
  }

  // reduce n contiguous values, lanes kept separate for SIMD (fixed order, so deterministic)
  static KILN_INLINE in_t reduce_contiguous(const in_t* p, std::int64_t n) {
    constexpr int lanes = 8;
    if (n < lanes) {  // the same value as below (the other lanes hold the identity), without them
      in_t acc = identity();
      for (std::int64_t i = 0; i < n; ++i) acc = combine(acc, p[i]);
      return combine(identity(), acc);
    }
    in_t acc[lanes];
    for (int l = 0; l < lanes; ++l) acc[l] = identity();
    std::int64_t i = 0;
    for (; i + lanes <= n; i += lanes)
      for (int l = 0; l < lanes; ++l) acc[l] = combine(acc[l], p[i + l]);
    for (; i < n; ++i) acc[0] = combine(acc[0], p[i]);
    in_t total = identity();
    for (int l = 0; l < lanes; ++l) total = combine(total, acc[l]);
    return total;
  }

  // Packets of in_t where Eigen has them (f32, f64): the strided reduction keeps whole blocks of
  // columns in registers over all rows.
  using packet = typename ei::packet_traits<in_t>::type;
  static constexpr int packet_lanes = ei::unpacket_traits<packet>::size;
  static constexpr bool packet_columns = (std::is_same_v<in_t, float> || std::is_same_v<in_t, double>) && packet_lanes > 1 &&
                                         (kind == op::reduce_sum || kind == op::reduce_mean || kind == op::reduce_max || kind == op::reduce_min);
  static KILN_INLINE packet pcombine(packet a, packet b) {  // combine() lane by lane, NaN rules included
    if constexpr (kind == op::reduce_max) return ei::pselect(ei::pcmp_lt(a, b), b, a);
    else if constexpr (kind == op::reduce_min) return ei::pselect(ei::pcmp_lt(b, a), b, a);
    else return ei::padd(a, b);
  }
  // acc[0, Packets packets) = the reduction over i < R of in[at + i * C, + Packets packets)
  template <int Packets> static KILN_INLINE void column_block(const context& ctx, in_t* scratch, in_t* acc, std::int64_t at, std::int64_t R,
                                                        std::int64_t C) {
    packet v[Packets];
    static_for<Packets>([&](auto q) { v[q] = ei::pset1<packet>(identity()); });
    for (std::int64_t i = 0; i < R; ++i) {
      const in_t* p = source(ctx, scratch, at + i * C, Packets * packet_lanes);
      static_for<Packets>([&](auto q) { v[q] = pcombine(v[q], ei::ploadu<packet>(p + q * packet_lanes)); });
    }
    static_for<Packets>([&](auto q) { ei::pstoreu(acc + q * packet_lanes, v[q]); });
  }
  // acc[0, n) = the reduction over i < R of in[at + i * C + j], j < n: blocks of columns held in
  // registers over all rows (a loop over the columns of each row would load and store acc per row)
  static void reduce_columns(const context& ctx, in_t* scratch, in_t* acc, std::int64_t at, std::int64_t R, std::int64_t C, std::int64_t n) {
    constexpr int block = 8;
    std::int64_t j = 0;
    if constexpr (packet_columns) {
      for (; j + block * packet_lanes <= n; j += block * packet_lanes) column_block<block>(ctx, scratch, acc + j, at + j, R, C);
      for (; j + packet_lanes <= n; j += packet_lanes) column_block<1>(ctx, scratch, acc + j, at + j, R, C);
    }
    if (j == n) return;
    if constexpr (packet_columns && std::is_same_v<in_t, float> && has_masked_tail) {  // one masked packet
      packet v = ei::pset1<packet>(identity());
      for (std::int64_t i = 0; i < R; ++i) v = pcombine(v, ploadu_first(source(ctx, scratch, at + i * C + j, n - j), n - j));
      pstoreu_first(acc + j, v, n - j);
    } else if constexpr (!fused_input) {  // column by column, the accumulator in a register
      for (std::int64_t k = j; k < n; ++k) {
        in_t a = identity();
        for (std::int64_t i = 0; i < R; ++i) a = combine(a, *source(ctx, scratch, at + i * C + k, 1));
        acc[k] = a;
      }
    } else {
      for (std::int64_t k = j; k < n; ++k) acc[k] = identity();
      for (std::int64_t i = 0; i < R; ++i) {
        const in_t* p = source(ctx, scratch, at + i * C + j, n - j);
        for (std::int64_t k = j; k < n; ++k) acc[k] = combine(acc[k], p[k - j]);
      }
    }
  }

  // Sums over all leading axes into few columns (a batch norm's per-channel sums over [N, H, W, C]):
  // C is static and whole packets wide, at most 8 of them. Whole rows go through the fused input
  // several at a time (one call per reduce_chunk elements, not per row), are accumulated in
  // registers in two interleaved chains (even and odd rows: one chain waits on the adder's
  // latency), over fixed blocks of rows reduced in parallel and combined in block order. The
  // blocks and chains depend only on the shape, so the result does not depend on the threads.
  static constexpr std::int64_t static_columns = [] {
    std::int64_t c = 1;
    for (int d = axes.last + 1; d < x.out.rank; ++d) {
      if (x.out.dim[d] == batch) return std::int64_t(-1);
      c *= x.out.dim[d];
    }
    return c;
  }();
  static constexpr int row_packets = packet_columns && static_columns > 0 && static_columns % packet_lanes == 0 ? int(static_columns / packet_lanes) : 0;
  static constexpr bool blocked_rows = (kind == op::reduce_sum || kind == op::reduce_mean) && std::is_same_v<in_t, out_t> && axes.first == 0 &&
                                      row_packets >= 1 && row_packets <= 8 && static_columns <= reduce_chunk;
  static constexpr std::int64_t max_row_blocks = 32;

  static void run_blocked_rows(const context& ctx, out_t* out, std::int64_t R) {
    constexpr std::int64_t C = static_columns;
    constexpr std::int64_t rows_per_call = reduce_chunk / C;
    std::int64_t block = std::max(rows_per_call * 16, (R + max_row_blocks - 1) / max_row_blocks);
    block = (block + rows_per_call - 1) / rows_per_call * rows_per_call;
    const std::int64_t blocks = (R + block - 1) / block;
    alignas(64) in_t partial[max_row_blocks][C];
    parallel_range(blocks, block * C * input::cost, [&](std::int64_t b, std::int64_t e) {
      alignas(64) in_t scratch[reduce_chunk];
      for (std::int64_t k = b; k < e; ++k) {
        packet even[row_packets], odd[row_packets];
        static_for<row_packets>([&](auto q) { even[q] = odd[q] = ei::pset1<packet>(identity()); });
        const std::int64_t r1 = std::min(R, (k + 1) * block);
        for (std::int64_t r = k * block; r < r1; r += rows_per_call) {
          const std::int64_t rows = std::min(rows_per_call, r1 - r);
          const in_t* p = source(ctx, scratch, r * C, rows * C);
          std::int64_t i = 0;
          for (; i + 2 <= rows; i += 2, p += 2 * C)
            static_for<row_packets>([&](auto q) {
              even[q] = pcombine(even[q], ei::ploadu<packet>(p + q * packet_lanes));
              odd[q] = pcombine(odd[q], ei::ploadu<packet>(p + C + q * packet_lanes));
            });
          if (i < rows) static_for<row_packets>([&](auto q) { even[q] = pcombine(even[q], ei::ploadu<packet>(p + q * packet_lanes)); });
        }
        static_for<row_packets>([&](auto q) { ei::pstoreu(partial[k] + q * packet_lanes, pcombine(even[q], odd[q])); });
      }
    });
    // the blocks' sums in block order, lane by lane as combine() and finish() would
    static_for<row_packets>([&](auto q) {
      packet acc = ei::pset1<packet>(identity());
      for (std::int64_t k = 0; k < blocks; ++k) acc = pcombine(acc, ei::ploadu<packet>(partial[k] + q * packet_lanes));
      if constexpr (kind == op::reduce_mean) acc = ei::pdiv(acc, ei::pset1<packet>(in_t(R > 0 ? R : 1)));
      ei::pstoreu(out + q * packet_lanes, acc);
    });
  }

  static void run(const context& ctx) {
    std::int64_t A = 1, R = 1, C = 1;
    for (int d = 0; d < x.out.rank; ++d) {
      const std::int64_t e = x.out.extent(d, ctx.batch);
      if (d < axes.first) A *= e;
      else if (d <= axes.last) R *= e;
      else C *= e;
    }
    out_t* out = static_cast<out_t*>(ctx.values[P::plan.groups[G].root]);
    const std::int64_t item_cost = input::cost;
    if constexpr (kind == op::argmax) {
      parallel_range(A * C, R * item_cost, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t o = b; o < e; ++o) {
          const std::int64_t a = o / C, c = o % C;
          in_t best = identity();
          std::int32_t best_index = 0;
          alignas(64) in_t scratch[64];  // room for a whole SIMD packet of the fused input
          for (std::int64_t i = 0; i < R; ++i) {
            const in_t v = *source(ctx, scratch, (a * R + i) * C + c, 1);
            if (v > best) { best = v; best_index = std::int32_t(i); }
          }
          out[o] = best_index;
        }
      });
    } else if (C == 1) {
      // contiguous rows; a single huge row is split into fixed blocks combined in order
      const std::int64_t block = std::max<std::int64_t>(reduce_chunk * 64, (R + 255) / 256);
      const std::int64_t blocks = (R + block - 1) / block;
      if (A == 1 && blocks > 1) {
        in_t partial[256];
        parallel_range(blocks, block * item_cost, [&](std::int64_t b, std::int64_t e) {
          alignas(64) in_t scratch[reduce_chunk];
          for (std::int64_t k = b; k < e; ++k) {
            in_t acc = identity();
            const std::int64_t end = std::min(R, (k + 1) * block);
            for (std::int64_t i = k * block; i < end; i += reduce_chunk) {
              const std::int64_t n = std::min(reduce_chunk, end - i);
              acc = combine(acc, reduce_contiguous(source(ctx, scratch, i, n), n));
            }
            partial[k] = acc;
          }
        });
        in_t acc = identity();
        for (std::int64_t k = 0; k < blocks; ++k) acc = combine(acc, partial[k]);
        out[0] = finish(acc, R);
      } else if (fused_input && R > 0 && R <= short_row) {
        // Many short rows (a softmax over a few classes): the fused input of a block of rows in one
        // call, instead of one call (and its setup) per row.
        const std::int64_t rows_per_call = reduce_chunk / R;
        parallel_range(A, R * item_cost, [&](std::int64_t b, std::int64_t e) {
          alignas(64) in_t scratch[reduce_chunk];
          for (std::int64_t a = b; a < e; a += rows_per_call) {
            const std::int64_t rows = std::min(rows_per_call, e - a);
            const in_t* p = source(ctx, scratch, a * R, rows * R);
            for (std::int64_t i = 0; i < rows; ++i) out[a + i] = finish(reduce_contiguous(p + i * R, R), R);
          }
        });
      } else {
        parallel_range(A, R * item_cost, [&](std::int64_t b, std::int64_t e) {
          alignas(64) in_t scratch[reduce_chunk];
          for (std::int64_t a = b; a < e; ++a) {
            in_t acc = identity();
            for (std::int64_t i = 0; i < R; i += reduce_chunk) {
              const std::int64_t n = std::min(reduce_chunk, R - i);
              acc = combine(acc, reduce_contiguous(source(ctx, scratch, a * R + i, n), n));
            }
            out[a] = finish(acc, R);
          }
        });
      }
    } else if constexpr (blocked_rows) {
      run_blocked_rows(ctx, out, R);
    } else {
      // strided: accumulate whole rows of C values, parallel over (a, column chunk)
      const std::int64_t col_chunks = (C + reduce_chunk - 1) / reduce_chunk;
      parallel_range(A * col_chunks, R * reduce_chunk * item_cost, [&](std::int64_t b, std::int64_t e) {
        alignas(64) in_t scratch[reduce_chunk];
        alignas(64) in_t acc[reduce_chunk];
        for (std::int64_t t = b; t < e; ++t) {
          const std::int64_t a = t / col_chunks, c0 = (t % col_chunks) * reduce_chunk;
          const std::int64_t n = std::min(reduce_chunk, C - c0);
          reduce_columns(ctx, scratch, acc, a * R * C + c0, R, C, n);
          for (std::int64_t j = 0; j < n; ++j) out[a * C + c0 + j] = finish(acc[j], R);
        }
      });
    }
  }

  static KILN_INLINE out_t finish(in_t acc, std::int64_t count) {
    if constexpr (kind == op::reduce_mean) return out_t(acc / in_t(count > 0 ? count : 1));
    else return out_t(acc);
  }
};

}  // namespace kiln::cpu_detail
