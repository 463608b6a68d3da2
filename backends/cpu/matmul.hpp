// Matrix products on the CPU. Small products with static K and N use register-blocked packet
// loops (no call overhead: batch-1 inference, the layers of a small policy network); larger ones
// run the cache-blocked kernel of gemm.hpp (f32) or Eigen's GEMM (f64, and f32 with a large
// transposed b) on fixed row blocks in parallel. A fused epilogue (bias, activation) runs on each
// row block right after it is produced, while it is still in cache.
//
// The packet loops are written with Eigen's packet primitives rather than left to the
// auto-vectorizer: g++ -O2 does not vectorize loops whose trip count is only known at run time,
// nor reorder a float sum, so a plain loop here runs one scalar FMA at a time.
#pragma once
#include <algorithm>
#include <type_traits>
#include <utility>
#include <Eigen/Core>
#include "../../ops/matmul.hpp"
#include "fused.hpp"
#include "gemm.hpp"

namespace kiln::cpu_detail {

// Shared by every matmul of the same dtype and transposes (not instantiated per graph node):
// keeps code size and compile time flat in the number of layers.
template <class T, bool TA, bool TB>
[[gnu::noinline]] void eigen_gemm_rows(const T* a, const T* b, T* c, std::int64_t M, std::int64_t N, std::int64_t K,
                                       std::int64_t m0, std::int64_t m1) {
  using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using cmap = Eigen::Map<const row_major>;
  Eigen::Map<row_major> out(c + m0 * N, m1 - m0, N);
  if constexpr (!TA && !TB) out.noalias() = cmap(a + m0 * K, m1 - m0, K) * cmap(b, K, N);
  else if constexpr (!TA && TB) out.noalias() = cmap(a + m0 * K, m1 - m0, K) * cmap(b, N, K).transpose();
  else if constexpr (TA && !TB) out.noalias() = cmap(a, K, M).middleCols(m0, m1 - m0).transpose() * cmap(b, K, N);
  else out.noalias() = cmap(a, K, M).middleCols(m0, m1 - m0).transpose() * cmap(b, N, K).transpose();
}

// Vector registers of the target: AVX-512 has 32, AVX and SSE 16. Register tiles hold up to half
// of them in accumulators, and up to a quarter in loaded packets.
inline constexpr int vector_registers = packet_width >= 16 ? 32 : 16;

// Packets [0, RP) of columns of MR rows of a * b, over static K: MR·RP independent accumulator
// chains (one row alone would leave the FMA units waiting on each chain's latency); the last
// packet LastW lanes wide (masked loads; its other lanes are zero). Row r's packets go to
// sink(r, acc[r]) (stored, or handed to a fused epilogue).
template <std::int64_t K, int MR, int RP, int LastW, class Sink>
KILN_INLINE void gemm_row_tile(const float* arow, const float* b, std::int64_t ldb, Sink&& sink) {
  packet_f32 acc[MR][RP];
  static_for<MR>([&](auto r) { static_for<RP>([&](auto p) { acc[r][p] = ei::pzero(packet_f32{}); }); });
  for (std::int64_t k = 0; k < K; ++k) {
    packet_f32 bk[RP];
    static_for<RP>([&](auto p) {
      const float* bp = b + k * ldb + p * packet_width;
      if constexpr (p == RP - 1 && LastW < packet_width) bk[p] = ploadu_first(bp, LastW);
      else bk[p] = ei::ploadu<packet_f32>(bp);
    });
    static_for<MR>([&](auto r) {
      const packet_f32 av = ei::pset1<packet_f32>(arow[r * K + k]);
      static_for<RP>([&](auto p) { acc[r][p] = ei::pmadd(av, bk[p], acc[r][p]); });
    });
  }
  static_for<MR>([&](auto r) { sink(std::int64_t(r), acc[r]); });
}

// Stores a tile of RP packets (the last LastW lanes wide) at p.
template <int RP, int LastW> KILN_INLINE void store_tile(float* p, const packet_f32* acc) {
  static_for<RP>([&](auto i) {
    if constexpr (i == RP - 1 && LastW < packet_width) pstoreu_first(p + i * packet_width, acc[i], LastW);
    else ei::pstoreu(p + i * packet_width, acc[i]);
  });
}

// The tile sink of a product without an epilogue in registers: tiles stored into c (ldc columns).
struct store_tiles {
  float* c;
  std::int64_t ldc;
  template <int RP, int LastW> KILN_INLINE void operator()(std::int64_t m, std::int64_t n0, const packet_f32* acc) const {
    store_tile<RP, LastW>(c + m * ldc + n0, acc);
  }
};

// Register-blocked f32 kernel for static K, N (batch-1 inference of small layers, a hidden layer
// over a small batch): each row of c in tiles of up to a quarter of the registers of packets.
// A last partial packet of columns goes through masked loads and stores where the ISA has them,
// else those columns are scalar dot products. Each tile goes to
// tile_sink.template operator()<RP, LastW>(m, n0, acc): stored into c (store_tiles), or run
// through a fused epilogue straight from the registers; the scalar columns are stored into c.
template <std::int64_t K, std::int64_t N, class TileSink>
void small_gemm_rows(const float* a, const float* b, float* c, std::int64_t m0, std::int64_t m1, const TileSink& tile_sink) {
  constexpr std::int64_t vector_cols = has_masked_tail ? N : N / packet_width * packet_width;
  constexpr std::int64_t packets = (vector_cols + packet_width - 1) / packet_width;
  // rows in tiles of MR, with up to half the vector registers in accumulators: tiles of R > 1
  // rows take up to a quarter of the registers per row; a row alone takes up to half (with 16
  // registers, AVX2's batch-1 layer would otherwise run twice as many tiles as AVX-512's)
  constexpr int MR = int(std::clamp<std::int64_t>(vector_registers / 2 / std::clamp<std::int64_t>(packets, 1, vector_registers / 4), 1, 8));
  auto row_tiles = [&]<int R>(std::int64_t m) {
    constexpr int RP = int(std::clamp<std::int64_t>(packets, 1, R == 1 ? vector_registers / 2 : vector_registers / 4));
    constexpr std::int64_t block = std::int64_t(RP) * packet_width;
    constexpr std::int64_t full_blocks = vector_cols / block, rest = vector_cols - full_blocks * block;
    constexpr int rest_packets = int((rest + packet_width - 1) / packet_width);
    constexpr int last_width = int(rest - std::int64_t(rest_packets - 1) * packet_width);
    const float* arow = a + m * K;
    for (std::int64_t blk = 0; blk < full_blocks; ++blk)
      gemm_row_tile<K, R, RP, packet_width>(arow, b + blk * block, N, [&](std::int64_t r, const packet_f32* acc) {
        tile_sink.template operator()<RP, packet_width>(m + r, blk * block, acc);
      });
    if constexpr (rest > 0)
      gemm_row_tile<K, R, rest_packets, last_width>(arow, b + full_blocks * block, N, [&](std::int64_t r, const packet_f32* acc) {
        tile_sink.template operator()<rest_packets, last_width>(m + r, full_blocks * block, acc);
      });
    for (std::int64_t r = 0; r < R; ++r)
      for (std::int64_t n = vector_cols; n < N; ++n) {
        float acc = 0;
        for (std::int64_t k = 0; k < K; ++k) acc += arow[r * K + k] * b[k * N + n];
        c[(m + r) * N + n] = acc;
      }
  };
  std::int64_t m = m0;
  for (; m + MR <= m1; m += MR) row_tiles.template operator()<MR>(m);
  for (; m < m1; ++m) row_tiles.template operator()<1>(m);
}

// c[m, n] = a[m, :] . bt[n, :] for N narrower than a packet (a logits or value head over a
// hidden layer): packet dot products along K. Rows go in blocks of packet_width / N, whose
// packet_width / N * N accumulators are summed across lanes all at once (one transpose, then
// adds: the results land in c's own order), rather than one horizontal sum each, which would cost
// more than the products. The tail of K goes through masked loads, or scalar where the ISA has
// none; rows left over after the blocks are done one at a time. (flatten: Eigen's ptranspose is
// not forced inline, and out of line the accumulators would make a round trip through memory.)
template <std::int64_t K, std::int64_t N>
[[gnu::flatten]] void narrow_gemm_rows(const float* a, const float* bt, float* c, std::int64_t m0, std::int64_t m1) {
  static_assert(N < packet_width && K >= packet_width);
  constexpr std::int64_t full = K / packet_width * packet_width, rest = K - full;
  constexpr int block_rows = int(packet_width / N), outputs = block_rows * int(N);
  constexpr bool scalar_k_tail = rest > 0 && !has_masked_tail;
  // the scalar tail of K for row m, column n
  auto scalar_tail = [&](std::int64_t m, std::int64_t n) {
    float t = 0;
    if constexpr (scalar_k_tail)
      for (std::int64_t k = full; k < K; ++k) t += a[m * K + k] * bt[n * K + k];
    return t;
  };
  std::int64_t m = m0;
  for (; m + block_rows <= m1; m += block_rows) {
    // Eigen's PacketBlock takes the vector type as a template argument, whose alignment
    // attribute GCC reports as ignored there: harmless (the block is a plain array of packets).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
    ei::PacketBlock<packet_f32, packet_width> acc;  // acc[r * N + n]: row m + r, column n
#pragma GCC diagnostic pop
    static_for<packet_width>([&](auto i) { acc.packet[i] = ei::pzero(packet_f32{}); });
    auto step = [&](std::int64_t k, auto load) {
      packet_f32 bk[N];
      static_for<int(N)>([&](auto n) { bk[n] = load(bt + n * K + k); });
      static_for<block_rows>([&](auto r) {
        const packet_f32 av = load(a + (m + r) * K + k);
        static_for<int(N)>([&](auto n) { acc.packet[r * N + n] = ei::pmadd(av, bk[n], acc.packet[r * N + n]); });
      });
    };
    for (std::int64_t k = 0; k < full; k += packet_width) step(k, [](const float* p) { return ei::ploadu<packet_f32>(p); });
    if constexpr (rest > 0 && has_masked_tail) step(full, [](const float* p) { return ploadu_first(p, rest); });
    ei::ptranspose(acc);
    packet_f32 sums = acc.packet[0];  // lane j: the total of accumulator j
    static_for<packet_width - 1>([&](auto i) { sums = ei::padd(sums, acc.packet[i + 1]); });
    if constexpr (scalar_k_tail || (outputs < packet_width && !has_masked_tail)) {
      alignas(64) float lanes[packet_width];
      ei::pstore(lanes, sums);
      for (int j = 0; j < outputs; ++j) c[m * N + j] = lanes[j] + scalar_tail(m + j / N, j % N);
    } else if constexpr (outputs == packet_width) {
      ei::pstoreu(c + m * N, sums);
    } else {
      pstoreu_first(c + m * N, sums, outputs);
    }
  }
  for (; m < m1; ++m) {
    const float* arow = a + m * K;
    packet_f32 acc[N];
    static_for<int(N)>([&](auto n) { acc[n] = ei::pzero(packet_f32{}); });
    for (std::int64_t k = 0; k < full; k += packet_width) {
      const packet_f32 av = ei::ploadu<packet_f32>(arow + k);
      static_for<int(N)>([&](auto n) { acc[n] = ei::pmadd(av, ei::ploadu<packet_f32>(bt + n * K + k), acc[n]); });
    }
    if constexpr (rest > 0 && has_masked_tail) {
      const packet_f32 av = ploadu_first(arow + full, rest);
      static_for<int(N)>([&](auto n) { acc[n] = ei::pmadd(av, ploadu_first(bt + n * K + full, rest), acc[n]); });
    }
    static_for<int(N)>([&](auto n) { c[m * N + n] = ei::predux(acc[n]) + scalar_tail(m, n); });
  }
}

// c[M,N] = a[K,M]^T b[K,N] for a small runtime K (the weight gradient of a layer over a small
// batch) where packet_batch_contraction below does not apply (f64; f32 on an ISA without masked
// loads when neither M nor N fills whole packets): K rank-1 updates along the longer of M and N.
// Eigen's GEMM would spend more on packing than on the arithmetic at these sizes.
template <class T> void small_batch_contraction(const T* a, const T* b, T* c, std::int64_t M, std::int64_t N, std::int64_t K) {
  if (N >= M) {
    std::fill(c, c + M * N, T(0));
    for (std::int64_t k = 0; k < K; ++k) {
      const T* ak = a + k * M;
      const T* bk = b + k * N;
      for (std::int64_t m = 0; m < M; ++m) {
        const T av = ak[m];
        T* cm = c + m * N;
        for (std::int64_t n = 0; n < N; ++n) cm[n] += av * bk[n];
      }
    }
    return;
  }
  constexpr std::int64_t max_scratch = 4096;
  T ct[max_scratch];  // c^T, accumulated along contiguous rows of a
  std::fill(ct, ct + M * N, T(0));
  for (std::int64_t k = 0; k < K; ++k) {
    const T* ak = a + k * M;
    const T* bk = b + k * N;
    for (std::int64_t n = 0; n < N; ++n) {
      const T bv = bk[n];
      T* cn = ct + n * M;
      for (std::int64_t m = 0; m < M; ++m) cn[m] += bv * ak[m];
    }
  }
  for (std::int64_t m = 0; m < M; ++m)
    for (std::int64_t n = 0; n < N; ++n) c[m * N + n] = ct[n * M + m];
}

// One register tile of c = a^T b over a runtime K (the batch): acc[r][p] += s[k, r] * v[k, p
// packets], where v is the operand vectorized along its columns and s the one broadcast. The tile
// is R x (RP packets), the last packet LastW lanes wide (masked loads and stores). Transposed:
// element (r, j) of the tile is c[j * ldc + r] (c^T accumulated), else c[r * ldc + j].
template <int R, int RP, int LastW, bool Transposed>
KILN_INLINE void contraction_tile(const float* s, std::int64_t lds, const float* v, std::int64_t ldv, float* c, std::int64_t ldc,
                                  std::int64_t K) {
  auto load = [&](const float* p, auto i) {
    if constexpr (i == RP - 1 && LastW < packet_width) return ploadu_first(p, LastW);
    else return ei::ploadu<packet_f32>(p);
  };
  packet_f32 acc[R][RP];
  static_for<R>([&](auto r) { static_for<RP>([&](auto p) { acc[r][p] = ei::pzero(packet_f32{}); }); });
  for (std::int64_t k = 0; k < K; ++k) {
    packet_f32 vk[RP];
    static_for<RP>([&](auto p) { vk[p] = load(v + k * ldv + p * packet_width, p); });
    static_for<R>([&](auto r) {
      const packet_f32 sk = ei::pset1<packet_f32>(s[k * lds + r]);
      static_for<RP>([&](auto p) { acc[r][p] = ei::pmadd(sk, vk[p], acc[r][p]); });
    });
  }
  static_for<R>([&](auto r) {
    static_for<RP>([&](auto p) {
      constexpr int width = p == RP - 1 ? LastW : packet_width;
      if constexpr (Transposed) {
        alignas(64) float lanes[packet_width];
        ei::pstore(lanes, acc[r][p]);
        for (int i = 0; i < width; ++i) c[(p * packet_width + i) * ldc + r] = lanes[i];
      } else if constexpr (width < packet_width) {
        pstoreu_first(c + r * ldc + p * packet_width, acc[r][p], width);
      } else {
        ei::pstoreu(c + r * ldc + p * packet_width, acc[r][p]);
      }
    });
  });
}

// Whether c[M,N] = a[K,M]^T b[K,N] vectorizes along N (rows of c) rather than along M (rows of
// c^T): along whichever wastes fewer lanes, N on a tie (no transposed stores). Without masked
// loads only a dimension that fills whole packets will do; neither: no packet kernel.
template <std::int64_t M, std::int64_t N> constexpr int contraction_orientation() {  // 1: along N, 2: along M, 0: none
  auto padded = [](std::int64_t x) { return (x + packet_width - 1) / packet_width * packet_width; };
  if (!has_masked_tail) return N % packet_width == 0 ? 1 : M % packet_width == 0 ? 2 : 0;
  return padded(N) * M <= padded(M) * N ? 1 : 2;
}

// c[M,N] = a[K,M]^T b[K,N] for a runtime K (a layer's weight gradient over the batch) and static
// M, N: register tiles of up to half the vector registers of accumulators, each tile one pass over
// K; a K of 0 gives zeros.
template <std::int64_t M, std::int64_t N>
void packet_batch_contraction(const float* a, const float* b, float* c, std::int64_t K) {
  constexpr int orientation = contraction_orientation<M, N>();
  static_assert(orientation != 0);
  constexpr bool along_n = orientation == 1;
  constexpr std::int64_t V = along_n ? N : M, S = along_n ? M : N;  // the vectorized and the broadcast extent
  const float* v = along_n ? b : a;
  const float* s = along_n ? a : b;
  constexpr std::int64_t packets = (V + packet_width - 1) / packet_width;
  constexpr int RP = int(std::min<std::int64_t>(packets, vector_registers / 4));
  constexpr int R = int(std::min<std::int64_t>(S, std::max(1, vector_registers / 2 / RP)));
  constexpr std::int64_t block = std::int64_t(RP) * packet_width;
  constexpr std::int64_t full_blocks = V / block, rest = V - full_blocks * block;
  auto over_s = [&]<int RPb, int LastW>(std::int64_t v0) {
    std::int64_t r0 = 0;
    // c + r0 * N + v0 along N (rows of c), c + v0 * N + r0 along M (rows of c^T)
    auto tile_c = [&](std::int64_t r) { return along_n ? c + r * N + v0 : c + v0 * N + r; };
    for (; r0 + R <= S; r0 += R) contraction_tile<R, RPb, LastW, !along_n>(s + r0, S, v + v0, V, tile_c(r0), N, K);
    if constexpr (S % R != 0) contraction_tile<int(S % R), RPb, LastW, !along_n>(s + r0, S, v + v0, V, tile_c(r0), N, K);
  };
  for (std::int64_t blk = 0; blk < full_blocks; ++blk) over_s.template operator()<RP, packet_width>(blk * block);
  if constexpr (rest > 0) {
    constexpr int rest_packets = int((rest + packet_width - 1) / packet_width);
    constexpr int last_width = int(rest - std::int64_t(rest_packets - 1) * packet_width);
    over_s.template operator()<rest_packets, last_width>(full_blocks * block);
  }
}

template <class P, int G> struct matmul_group {
  static constexpr group_info grp = P::plan.groups[G];
  static constexpr int M_node = grp.anchor >= 0 ? grp.anchor : grp.root;
  static constexpr const node& mm = P::nodes[M_node];
  static constexpr const node& na = P::nodes[mm.in[0]];
  static constexpr const node& nb = P::nodes[mm.in[1]];
  static constexpr matmul_attrs attrs = matmul_attrs::of(mm);
  static constexpr bool ta = attrs.transpose_a, tb = attrs.transpose_b;
  // A row-folded contraction [?,R,M]^T x [?,R,N] is the batch contraction [?·R,M]^T x [?·R,N].
  static constexpr bool fold = attrs.fold_rows;
  static constexpr std::int64_t rows_per_batch = fold ? na.out.dim[1] : 1;
  static constexpr shape sa = fold ? shape{batch, na.out.dim[2]} : na.out;
  static constexpr shape sb = fold ? shape{batch, nb.out.dim[2]} : nb.out;
  using T = ctype<mm.type>;
  static constexpr int ra = sa.rank, rb = sb.rank;
  static constexpr std::int64_t K = ta ? sa.dim[ra - 2] : sa.dim[ra - 1];
  static constexpr std::int64_t N = tb ? sb.dim[rb - 2] : sb.dim[rb - 1];
  static constexpr bool batch_contraction = K == batch;  // [?,M]^T x [?,N]: K is the batch size
  static constexpr bool f32_static_k = !ta && !batch_contraction && std::is_same_v<T, float>;
  // N below a packet, K at least one (a logits or value head): packet dot products against the
  // columns of b, which a transposed b already holds as rows (any size); b itself is packed.
  static constexpr bool narrow_kernel = f32_static_k && N < packet_width && K >= packet_width && (tb || K * N <= 4096);
  // the register-blocked kernel; a transposed b (dh = dlogits W^T in a backward pass) is packed
  // into [K,N] first when small
  static constexpr bool small_kernel = f32_static_k && !narrow_kernel && (tb ? K * N <= 4096 : K * N <= 32768);
  // (a b of one row or one column is the same array either way)
  // the rest in f32: the cache-blocked kernel (gemm.hpp) for an untransposed b, or a static
  // transposed b of up to 128 KiB transposed once here (a conv layer's input gradient: dy W^T);
  // larger transposed b: Eigen's GEMM
  static constexpr bool transpose_once = std::is_same_v<T, float> && !narrow_kernel && !small_kernel && tb && !batch_contraction &&
                                         K * N <= 32768;
  static constexpr bool blocked_kernel = std::is_same_v<T, float> && !narrow_kernel && !small_kernel && (!tb || transpose_once);
  static constexpr bool pack_b = (((narrow_kernel && !tb) || (small_kernel && tb)) && K > 1 && N > 1) || transpose_once;
  static constexpr std::int64_t Mc = ta ? sa.dim[ra - 1] : sa.dim[ra - 2];  // M of a batch contraction (static)
  static constexpr bool packet_contraction = batch_contraction && ta && !tb && std::is_same_v<T, float> && Mc * N <= 4096 &&
                                             contraction_orientation<Mc, N>() != 0;
  using epilogue = fused_expr<P, G, grp.root, grp.root>;
  static constexpr std::int64_t row_block = 64;
  // Rows per task: M in ceil(M / row_block) blocks of equal size (a multiple of 4), so that the
  // threads get even shares (M = 100 as one 64-row and one 36-row block kept one of two threads
  // waiting a third of the time). Depends only on M, never on the number of threads.
  static constexpr std::int64_t balanced_row_block(std::int64_t M) {
    const std::int64_t blocks = (M + row_block - 1) / row_block;
    if (blocks <= 1) return row_block;
    const std::int64_t rows = (M + blocks - 1) / blocks;
    return (rows + 3) / 4 * 4;
  }
  // The small kernel hands its packets to the epilogue in registers: the product is never stored
  // and read back (at [32,128] that store alone costs as much as the arithmetic).
  using register_epilogue = fused_expr<P, G, grp.root, grp.root, (grp.anchor_view >= 0 ? grp.anchor_view : M_node)>;
  static constexpr bool epilogue_in_registers =
      grp.anchor >= 0 && small_kernel && (has_masked_tail || N % packet_width == 0) && register_epilogue::takes_given_packets;

  // Tiles of the product for rows of c that start at element `base` of the root (batch entry
  // base / (M N)) through the epilogue into the root's buffer, which c aliases.
  struct epilogue_tiles {
    const context& ctx;
    float* root;
    std::int64_t base;
    template <int RP, int LastW> KILN_INLINE void operator()(std::int64_t m, std::int64_t n0, const packet_f32* acc) const {
      typename register_epilogue::state st;
      const std::int64_t at = base + m * N + n0;
      const std::int64_t col = register_epilogue::seek(ctx, st, at);
      static_for<RP>([&](auto p) {
        if constexpr (p == RP - 1 && LastW < packet_width)
          register_epilogue::template store_given<false>(st, root + at + p * packet_width, col + p * packet_width, acc[p], LastW);
        else register_epilogue::template store_given<true>(st, root + at + p * packet_width, col + p * packet_width, acc[p]);
      });
    }
  };

  // b in the layout its kernel reads: [N,K] for the narrow kernel, [K,N] for the others
  static void pack(const T* b, float* out) {
    if constexpr (narrow_kernel)
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t k = 0; k < K; ++k) out[n * K + k] = b[k * N + n];
    else
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) out[k * N + n] = b[n * K + k];
  }

  // c[m0:m1, :] = op(a) * op(b) for batch entry bi (b already packed where pack_b), and its
  // epilogue where it runs from the registers
  static void rows(const context& ctx, const T* a, const T* b, T* c, std::int64_t bi, std::int64_t M, std::int64_t k, std::int64_t m0,
                   std::int64_t m1) {
    T* cb = c + bi * M * N;
    if constexpr (narrow_kernel) narrow_gemm_rows<K, N>(a, b, cb, m0, m1);
    else if constexpr (epilogue_in_registers) small_gemm_rows<K, N>(a, b, cb, m0, m1, epilogue_tiles{ctx, c, bi * M * N});
    else if constexpr (small_kernel) small_gemm_rows<K, N>(a, b, cb, m0, m1, store_tiles{cb, N});
    else if constexpr (blocked_kernel) blocked_gemm_rows<ta>(a, b, cb, M, N, k, m0, m1);
    else eigen_gemm_rows<T, ta, tb>(a, b, cb, M, N, k, m0, m1);
  }

  // rows() and then, where it does not run from the registers, the epilogue over those rows
  static void rows_and_epilogue(const context& ctx, const T* a, const T* b, T* c, std::int64_t bi, std::int64_t M, std::int64_t k,
                                std::int64_t m0, std::int64_t m1) {
    rows(ctx, a, b, c, bi, M, k, m0, m1);
    if constexpr (grp.anchor >= 0 && !epilogue_in_registers) {
      const std::int64_t begin = (bi * M + m0) * N, end = (bi * M + m1) * N;
      epilogue::run(ctx, c + begin, begin, end);
    }
  }

  // A long contraction (a conv layer's weight gradient: K = batch · output pixels) in fixed chunks
  // of rows, one partial product each, summed in chunk order: the threads share the work and the
  // result does not depend on how many there are. A chunk's rows stay in L2 across the kernel's
  // passes over them.
  static void chunked_contraction(const float* a, const float* b, float* c, std::int64_t rows) {
    constexpr std::int64_t max_chunks = 16, min_rows = 512;
    std::int64_t chunk = std::max(min_rows, (rows + max_chunks - 1) / max_chunks);
    const std::int64_t chunks = (rows + chunk - 1) / chunk;
    alignas(64) float partial[max_chunks][Mc * N];
    parallel_range(chunks, chunk * Mc * N * 2, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t q = c0; q < c1; ++q) {
        const std::int64_t r0 = q * chunk, r1 = std::min(rows, r0 + chunk);
        packet_batch_contraction<Mc, N>(a + r0 * Mc, b + r0 * N, partial[q], r1 - r0);
      }
    });
    std::copy(partial[0], partial[0] + Mc * N, c);
    for (std::int64_t q = 1; q < chunks; ++q)
      for (std::int64_t e = 0; e < Mc * N; ++e) c[e] += partial[q][e];
  }

  static void run(const context& ctx) {
    const T* a = static_cast<const T*>(ctx.values[mm.in[0]]);
    const T* b = static_cast<const T*>(ctx.values[mm.in[1]]);
    T* c = static_cast<T*>(ctx.values[M_node]);
    const std::int64_t M = ta ? sa.extent(ra - 1, ctx.batch) : sa.extent(ra - 2, ctx.batch);
    const std::int64_t Kr = batch_contraction ? ctx.batch * rows_per_batch : K;
    if constexpr (batch_contraction && ta && !tb) {
      // One thread: below a row block Eigen would not split the work either, and above it the
      // product is still too small to pay for a task.
      if constexpr (packet_contraction) {
        if (Kr * M * N <= (std::int64_t(1) << 18)) packet_batch_contraction<Mc, N>(a, b, c, Kr);
        else chunked_contraction(a, b, c, Kr);
        if constexpr (grp.anchor >= 0) epilogue::run(ctx, c, 0, M * N);
        return;
      } else if (M * N <= 4096 && Kr * M * N <= (std::int64_t(1) << 16)) {
        small_batch_contraction(a, b, c, M, N, Kr);
        if constexpr (grp.anchor >= 0) epilogue::run(ctx, c, 0, M * N);
        return;
      }
    }
    // b packed once here when every batch entry shares it, else per task below
    [[maybe_unused]] alignas(64) float shared_packed[pack_b && rb == 2 ? K * N : 1];
    if constexpr (pack_b && rb == 2) pack(b, shared_packed);
    const std::int64_t batches = ra == 3 ? sa.extent(0, ctx.batch) : 1;
    const std::int64_t block = balanced_row_block(M);
    const std::int64_t blocks_per_batch = (M + block - 1) / block;
    auto task = [&](std::int64_t t) {
      const std::int64_t bi = t / blocks_per_batch, m0 = (t % blocks_per_batch) * block;
      const std::int64_t m1 = std::min(M, m0 + block);
      const T* ab = a + (ra == 3 ? bi * M * Kr : 0);
      const T* bb = b + (rb == 3 ? bi * Kr * N : 0);
      if constexpr (pack_b && rb == 3) {
        alignas(64) float packed[K * N];
        pack(bb, packed);
        rows_and_epilogue(ctx, ab, packed, c, bi, M, Kr, m0, m1);
      } else if constexpr (pack_b) {
        rows_and_epilogue(ctx, ab, shared_packed, c, bi, M, Kr, m0, m1);
      } else {
        rows_and_epilogue(ctx, ab, bb, c, bi, M, Kr, m0, m1);
      }
    };
    const std::int64_t tasks = batches * blocks_per_batch;
    parallel_range(tasks, block * N * Kr * 2, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t) task(t);
    });
  }

  // Whether the product splits over the batch, sample by sample: a [?,M,K] or [?,K] a (not
  // transposed) times one static b, so that samples [b0, b1) of c need only samples [b0, b1)
  // of a (batch_segments.hpp runs such products a few samples at a time through a chain), and
  // with a kernel whose sums for a row do not depend on which rows it runs with (the small and
  // the blocked kernel; not the narrow one, which sums a block of rows' lanes differently from a
  // row left over, nor Eigen's, whose blocking depends on M), so that tiles change no bit.
  static constexpr bool per_sample = !ta && !batch_contraction && !fold && rb == 2 && std::is_same_v<T, float> &&
                                     (small_kernel || blocked_kernel) && sa.dim[0] == batch && [] {
                                       for (int d = 1; d < sa.rank; ++d)
                                         if (sa.dim[d] == batch) return false;
                                       return true;
                                     }();
  // Samples [b0, b1) of c (and of the epilogue), on the calling thread.
  static void run_samples(const context& ctx, std::int64_t b0, std::int64_t b1) requires per_sample {
    const T* a = static_cast<const T*>(ctx.values[mm.in[0]]);
    const T* b = static_cast<const T*>(ctx.values[mm.in[1]]);
    T* c = static_cast<T*>(ctx.values[M_node]);
    [[maybe_unused]] alignas(64) float packed[pack_b ? K * N : 1];
    if constexpr (pack_b) pack(b, packed);
    const T* bk = pack_b ? packed : b;
    // rows [r0, r1) of batch entry bi (of M rows each)
    auto rows_of = [&](std::int64_t bi, std::int64_t M, std::int64_t r0, std::int64_t r1) {
      for (std::int64_t m0 = r0; m0 < r1; m0 += row_block)
        rows_and_epilogue(ctx, a + (ra == 3 ? bi * M * K : 0), bk, c, bi, M, K, m0, std::min(r1, m0 + row_block));
    };
    if constexpr (ra == 3)
      for (std::int64_t bi = b0; bi < b1; ++bi) rows_of(bi, sa.dim[1], 0, sa.dim[1]);
    else rows_of(0, ctx.batch, b0, b1);
  }
};

}  // namespace kiln::cpu_detail
