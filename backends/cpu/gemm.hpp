// The large f32 matrix product on the CPU: c[m0:m1, :] = op(a) b, cache-blocked around a
// register micro-kernel, in the manner of BLIS (Van Zee & van de Geijn, "BLIS: A Framework for
// Rapidly Instantiating BLAS Functionality", 2015) but row-major and vectorized along N.
//
// Why not Eigen's GEMM: Eigen packs both operands on every call, and each of kiln's row-block
// tasks is a call. One core of a Zen 5, the MLP's [100,784] x [784,300] in one call (bench/bench_gemm,
// -mtune=generic): this kernel 163-165 GFLOP/s, Eigen 163-168, OpenBLAS 0.3.21 (Cooperlake
// kernels) 169-171, of a 231 peak; as kiln runs it, two 52-row blocks on two cores: this kernel
// 155 us, Eigen 180 us; the weight gradient in 64-row blocks: 269-274 us against 290-294. AVX2
// build: 83-92% of one core's FMA peak (Eigen 84-88%).
//
// Blocking, for C[M,N] += A[M,K] B[K,N]:
//   K in blocks of at most kc_max (an A tile of MR rows x kc stays in L1 while it sweeps N);
//   M in tiles of MR rows (the broadcast operand), each packed k-major into MR x kc floats, so
//     that the kernel's broadcasts come from one pointer at fixed offsets (with twelve row
//     pointers, g++'s -mtune=generic ran out of general registers and spilled accumulators);
//   N in panels of NR = 2 packets (the vector operand, read from B where it lies; only a partial
//     last panel is copied, zero-padded, into a small buffer).
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

// Rows [m, m + rows) and depth [k0, k0 + kc) of op(a), k-major: tile[k * MR + r].
template <bool TA> void pack_a_tile(const float* a, std::int64_t lda, std::int64_t m, std::int64_t rows, std::int64_t k0, std::int64_t kc,
                                    float* tile) {
  if constexpr (TA) {  // a row of a holds the tile's rows side by side
    for (std::int64_t k = 0; k < kc; ++k) std::copy_n(a_at<TA>(a, lda, m, k0 + k), rows, tile + k * MR);
  } else {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* ar = a_at<TA>(a, lda, m + r, k0);
      for (std::int64_t k = 0; k < kc; ++k) tile[k * MR + r] = ar[k];
    }
  }
}

// c[R rows, NR cols] (ldc) = (accumulate ? c : 0) + sum over k < kc of a[k * MR + r] * panel[k, 0:NR]
// (a: a packed tile; panel row stride ldp). Only the first `cols` columns of c are read and
// written (all NR when Whole: a separate instance, so that the partial store's memory tile
// cannot keep the whole panel's accumulators out of registers).
template <int R, bool Whole>
KILN_INLINE void micro_kernel(const float* a, const float* panel, std::int64_t ldp, std::int64_t kc, float* c, std::int64_t ldc,
                              bool accumulate, int cols) {
  packet_f32 acc[R][NP];
  static_for<R>([&](auto r) { static_for<NP>([&](auto p) { acc[r][p] = ei::pzero(packet_f32{}); }); });
  for (std::int64_t k = 0; k < kc; ++k) {
    const packet_f32 b0 = ei::ploadu<packet_f32>(panel + k * ldp);
    const packet_f32 b1 = ei::ploadu<packet_f32>(panel + k * ldp + packet_width);
    static_for<R>([&](auto r) {
      const packet_f32 av = ei::pset1<packet_f32>(a[k * MR + r]);
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

// A K block [k0, k0 + kc) of B's columns [n0, n0 + cols) as a zero-padded kc x NR panel (the
// partial last panel; whole panels are read where they lie).
inline void pack_panel(const float* b, std::int64_t N, std::int64_t k0, std::int64_t kc, std::int64_t n0, int cols, float* panel) {
  for (std::int64_t k = 0; k < kc; ++k) {
    std::copy(b + (k0 + k) * N + n0, b + (k0 + k) * N + n0 + cols, panel + k * NR);
    std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.f);
  }
}

// The kernel for a tile of `rows` rows (MR, or the last rows: one instance per height).
template <bool Whole>
KILN_INLINE void tile_kernel(std::int64_t rows, const float* a, const float* panel, std::int64_t ldp, std::int64_t kc, float* c, std::int64_t ldc,
                             bool accumulate, int cols) {
  if (rows == MR) return micro_kernel<MR, Whole>(a, panel, ldp, kc, c, ldc, accumulate, cols);
  [&]<int... R>(std::integer_sequence<int, R...>) {
    ((rows == R + 1 ? (micro_kernel<R + 1, Whole>(a, panel, ldp, kc, c, ldc, accumulate, cols), 0) : 0), ...);
  }(std::make_integer_sequence<int, MR - 1>{});
}

}  // namespace gemm

// c[m0:m1, 0:N] = op(a)[m0:m1, :] b, op(a) [M,K] (a stored [K,M] when TA), b [K,N]; c
// row-major with N columns. (A transposed b is transposed once by the caller when small, or goes
// to Eigen's GEMM, which packs it better than panel-by-panel transposes did: 165 against 113-124
// GFLOP/s for [100,300] x [784,300]^T.) Shared by every product of the same transposes (not
// instantiated per graph node). The sums run in a fixed order that depends only on the shapes.
template <bool TA>
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
  const std::int64_t whole = N / NR * NR;  // columns in whole panels
  alignas(64) float last_panel[kc_max * NR];
  alignas(64) float a_tile[kc_max * MR];
  for (std::int64_t k0 = 0; k0 < K; k0 += kc_even) {
    const std::int64_t kc = std::min(kc_even, K - k0);
    if (whole < N) pack_panel(b, N, k0, kc, whole, int(N - whole), last_panel);
    // an MR-row tile of A, packed once, swept across every panel of this K block (B's K block
    // stays in L2 across the tiles)
    for (std::int64_t m = m0; m < m1; m += MR) {
      const std::int64_t rows = std::min<std::int64_t>(MR, m1 - m);
      pack_a_tile<TA>(a, lda, m, rows, k0, kc, a_tile);
      float* cm = c + m * N;
      for (std::int64_t n0 = 0; n0 < whole; n0 += NR) tile_kernel<true>(rows, a_tile, b + k0 * N + n0, N, kc, cm + n0, N, k0 > 0, NR);
      if (whole < N) tile_kernel<false>(rows, a_tile, last_panel, NR, kc, cm + whole, N, k0 > 0, int(N - whole));
    }
  }
}

}  // namespace kiln::cpu_detail
