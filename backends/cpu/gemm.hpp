// The large f32 matrix product on the CPU: c[m0:m1, :] = op(a) op(b), cache-blocked around a
// register micro-kernel, in the manner of BLIS (Van Zee & van de Geijn, "BLIS: A Framework for
// Rapidly Instantiating BLAS Functionality", 2015) but row-major and vectorized along N.
//
// Why not Eigen's GEMM: Eigen packs both operands on every call, and each of kiln's row-block
// tasks is a call. One core of a Zen 5, [100,784] x [784,300] (bench/bench_gemm): AVX-512 Eigen
// 117-140 GFLOP/s, OpenBLAS 0.3.21 (Cooperlake kernels) 160-180, this kernel 167-180 (of a 231
// peak); AVX2 build: Eigen 92-96, OpenBLAS (Haswell kernels) 98, this kernel 97-99 (of 109).
//
// Blocking, for C[M,N] += A[M,K] B[K,N]:
//   K in blocks of at most kc_max (an A tile of MR rows x kc stays in L1 while it sweeps N);
//   M in tiles of MR rows (broadcast operand, read from A where it lies: no packing);
//   N in panels of NR = 2 packets (the vector operand, read from B where it lies when B is
//     untransposed and the panel is whole; else packed, zero-padded, into a small buffer).
// The micro-kernel keeps MR x 2 packets of C in registers: 24 on AVX-512 (32 registers), 12 on
// AVX2 and SSE (16): BLIS' own shapes for these ISAs (12x32 in its terms is 32x12; 6x16 on Haswell).
#pragma once
#include <algorithm>
#include <cstdint>
#include "packet_math.hpp"

namespace kiln::cpu_detail {

namespace gemm {

inline constexpr int NP = 2;                                       // packets per panel
inline constexpr int NR = NP * packet_width;                       // columns per panel
inline constexpr int MR = packet_width >= 16 ? 12 : 6;             // rows per micro-tile
inline constexpr std::int64_t kc_max = 256;                        // depth of a K block

// Element (m, k) of op(a) for a [M,K] (lda = K) or, transposed, a [K,M] (lda = M).
template <bool TA> KILN_INLINE const float* a_at(const float* a, std::int64_t lda, std::int64_t m, std::int64_t k) {
  return TA ? a + k * lda + m : a + m * lda + k;
}

// c[R rows, NR cols] (ldc) = (accumulate ? c : 0) + sum over k < kc of A(r, k) * panel[k, 0:NR]
// (panel row stride ldp). Only the first `cols` columns of c are read and written (all NR when
// Whole: a separate instance, so that the partial store's memory tile cannot keep the whole
// panel's accumulators out of registers).
template <int R, bool TA, bool Whole>
KILN_INLINE void micro_kernel(const float* a, std::int64_t lda, const float* panel, std::int64_t ldp, std::int64_t kc, float* c,
                              std::int64_t ldc, bool accumulate, int cols) {
  packet_f32 acc[R][NP];
  static_for<R>([&](auto r) { static_for<NP>([&](auto p) { acc[r][p] = ei::pzero(packet_f32{}); }); });
  for (std::int64_t k = 0; k < kc; ++k) {
    const packet_f32 b0 = ei::ploadu<packet_f32>(panel + k * ldp);
    const packet_f32 b1 = ei::ploadu<packet_f32>(panel + k * ldp + packet_width);
    static_for<R>([&](auto r) {
      const packet_f32 av = ei::pset1<packet_f32>(*a_at<TA>(a, lda, r, k));
      acc[r][0] = ei::pmadd(av, b0, acc[r][0]);
      acc[r][1] = ei::pmadd(av, b1, acc[r][1]);
    });
  }
  // Whole tiles: the accumulating and the plain store are two loops; written as one loop with a
  // conditional add, g++ 12 kept all 24 accumulators on the stack through the k loop (3x slower).
  if constexpr (Whole) {
    if (accumulate)
      static_for<R>([&](auto r) {
        float* cr = c + r * ldc;
        ei::pstoreu(cr, ei::padd(acc[r][0], ei::ploadu<packet_f32>(cr)));
        ei::pstoreu(cr + packet_width, ei::padd(acc[r][1], ei::ploadu<packet_f32>(cr + packet_width)));
      });
    else
      static_for<R>([&](auto r) {
        ei::pstoreu(c + r * ldc, acc[r][0]);
        ei::pstoreu(c + r * ldc + packet_width, acc[r][1]);
      });
  } else {  // a partial last panel: through a tile in memory (once per row of c and K block)
    alignas(64) float tile[NR];
    static_for<R>([&](auto r) {
      ei::pstore(tile, acc[r][0]);
      ei::pstore(tile + packet_width, acc[r][1]);
      float* cr = c + r * ldc;
      for (int j = 0; j < cols; ++j) cr[j] = accumulate ? cr[j] + tile[j] : tile[j];
    });
  }
}

// A K block [k0, k0 + kc) of B's columns [n0, n0 + cols) as a zero-padded kc x NR panel.
template <bool TB> void pack_panel(const float* b, std::int64_t N, std::int64_t K, std::int64_t k0, std::int64_t kc, std::int64_t n0, int cols,
                                   float* panel) {
  if constexpr (TB) {
    // a transpose in strips of 8 k: each strip reads 32 bytes of each of B's rows and writes 8
    // rows of the panel, which stay in L1 (whole columns at a time thrashed it: 1.3x slower)
    constexpr std::int64_t strip = 8;
    for (std::int64_t ks = 0; ks < kc; ks += strip) {
      const std::int64_t ke = std::min(kc, ks + strip);
      for (int j = 0; j < cols; ++j) {
        const float* bj = b + (n0 + j) * K + k0;
        for (std::int64_t k = ks; k < ke; ++k) panel[k * NR + j] = bj[k];
      }
    }
    for (std::int64_t k = 0; k < kc; ++k) std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.f);
  } else {
    for (std::int64_t k = 0; k < kc; ++k) {
      std::copy(b + (k0 + k) * N + n0, b + (k0 + k) * N + n0 + cols, panel + k * NR);
      std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.f);
    }
  }
}

// Rows [m0, m1) of the tile loop for one K block and one panel.
template <bool TA, bool Whole>
KILN_INLINE void row_tiles(const float* a, std::int64_t lda, const float* panel, std::int64_t ldp, std::int64_t k0, std::int64_t kc, float* c,
                           std::int64_t N, std::int64_t n0, std::int64_t m0, std::int64_t m1, int cols) {
  const bool accumulate = k0 > 0;
  std::int64_t m = m0;
  for (; m + MR <= m1; m += MR) micro_kernel<MR, TA, Whole>(a_at<TA>(a, lda, m, k0), lda, panel, ldp, kc, c + m * N + n0, N, accumulate, cols);
  const std::int64_t rest = m1 - m;
  if (rest == 0) return;
  // the last rows: one kernel of exactly that height (MR - 1 shapes at most)
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((rest == R + 1 ? (micro_kernel<R + 1, TA, Whole>(a_at<TA>(a, lda, m, k0), lda, panel, ldp, kc, c + m * N + n0, N, accumulate, cols), 0) : 0),
     ...);
  }(std::make_integer_sequence<int, MR - 1>{});
}

}  // namespace gemm

// c[m0:m1, 0:N] = op(a)[m0:m1, :] op(b), op(a) [M,K] and op(b) [K,N] (a stored [K,M] when TA, b
// stored [N,K] when TB); c row-major with N columns. Shared by every product of the same
// transposes (not instantiated per graph node). The sums run in a fixed order that depends only
// on the shapes.
template <bool TA, bool TB>
[[gnu::noinline, gnu::flatten]] void blocked_gemm_rows(const float* a, const float* b, float* c, std::int64_t M, std::int64_t N, std::int64_t K,
                                         std::int64_t m0, std::int64_t m1) {
  using namespace gemm;
  const std::int64_t lda = TA ? M : K;
  if (K == 0) {
    std::fill(c + m0 * N, c + m1 * N, 0.f);
    return;
  }
  // K in blocks of equal depth (784 as 4 x 196, not 3 x 256 + 16)
  const std::int64_t kblocks = (K + kc_max - 1) / kc_max;
  const std::int64_t kc_even = (K + kblocks - 1) / kblocks;
  // Panels in groups: the MR-row tile of A is loaded into L1 once per group and swept across its
  // panels. An untransposed B is read in place (one group of all of N; only a partial last panel
  // is packed); a transposed one is packed packed_panels at a time.
  constexpr std::int64_t packed_panels = 4;
  const std::int64_t group_cols = TB ? packed_panels * NR : N;
  alignas(64) float packed[(TB ? packed_panels : 1) * kc_max * NR];
  for (std::int64_t k0 = 0; k0 < K; k0 += kc_even) {
    const std::int64_t kc = std::min(kc_even, K - k0);
    for (std::int64_t g0 = 0; g0 < N; g0 += group_cols) {
      const std::int64_t g1 = std::min(N, g0 + group_cols);
      auto in_place = [&](std::int64_t n0) { return !TB && n0 + NR <= N; };
      auto packed_at = [&](std::int64_t n0) { return packed + (TB ? (n0 - g0) / NR * kc * NR : 0); };
      auto panel = [&](std::int64_t n0) -> const float* { return in_place(n0) ? b + k0 * N + n0 : packed_at(n0); };
      auto ldp = [&](std::int64_t n0) { return in_place(n0) ? N : std::int64_t(NR); };
      for (std::int64_t n0 = g0; n0 < g1; n0 += NR)
        if (!in_place(n0)) pack_panel<TB>(b, N, K, k0, kc, n0, int(std::min<std::int64_t>(NR, N - n0)), packed_at(n0));
      for (std::int64_t m = m0; m < m1; m += MR) {
        const std::int64_t me = std::min(m1, m + MR);
        std::int64_t n0 = g0;
        for (; n0 + NR <= g1; n0 += NR) row_tiles<TA, true>(a, lda, panel(n0), ldp(n0), k0, kc, c, N, n0, m, me, NR);
        if (n0 < g1) row_tiles<TA, false>(a, lda, panel(n0), ldp(n0), k0, kc, c, N, n0, m, me, int(g1 - n0));
      }
    }
  }
}

}  // namespace kiln::cpu_detail
