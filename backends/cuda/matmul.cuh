// Matrix products through cuBLAS, with the group's fused epilogue (bias, activation, ...) as one
// elementwise kernel right after the GEMM, reading the product in place.
//
// cuBLAS is column-major. A row-major C[M,N] is the column-major C^T[N,M], and C^T = B^T A^T, so
// the call passes B first: gemm(opB, opA, N, M, K, B, A, C). A row-major X read without a
// transpose is, to cuBLAS, X^T with the leading dimension of its row length.
#pragma once
#include <climits>
#include <cstdint>
#include "../../ops/matmul.hpp"
#include "fused.cuh"

namespace kiln::cuda_detail {

struct gemm_shape {
  std::int64_t M = 0, N = 0, K = 0;
  std::int64_t batches = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  bool ta = false, tb = false;
};

inline int gemm_int(std::int64_t v, const char* what) {
  if (v > std::int64_t(INT_MAX)) throw error(std::string("kiln: matmul: ") + what + " of " + std::to_string(v) + " exceeds cuBLAS' int range");
  return int(v);
}

template <class T> void gemm(cublasHandle_t handle, const gemm_shape& s, const T* a, const T* b, T* c) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "matmul is defined for f32 and f64");
  if (s.M == 0 || s.N == 0 || s.batches == 0) return;
  if (s.K == 0) {
    // An empty contraction (a batch of 0 contracted over): zeros, without asking cuBLAS about
    // operands that may have no memory behind them.
    cudaStream_t stream = nullptr;
    KILN_CUDA(cublasGetStream(handle, &stream));
    KILN_CUDA(cudaMemsetAsync(c, 0, std::size_t(s.batches * s.M * s.N) * sizeof(T), stream));
    return;
  }
  const T one = 1, zero = 0;
  const int M = gemm_int(s.M, "M"), N = gemm_int(s.N, "N"), K = gemm_int(s.K, "K");
  const cublasOperation_t op_a = s.ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = s.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int lda = s.ta ? M : K, ldb = s.tb ? K : N, ldc = N;
  if (s.batches == 1) {
    if constexpr (std::is_same_v<T, float>) KILN_CUDA(cublasSgemm(handle, op_b, op_a, N, M, K, &one, b, ldb, a, lda, &zero, c, ldc));
    else KILN_CUDA(cublasDgemm(handle, op_b, op_a, N, M, K, &one, b, ldb, a, lda, &zero, c, ldc));
  } else {
    const int batches = gemm_int(s.batches, "batch count");
    if constexpr (std::is_same_v<T, float>)
      KILN_CUDA(cublasSgemmStridedBatched(handle, op_b, op_a, N, M, K, &one, b, ldb, s.stride_b, a, lda, s.stride_a, &zero, c, ldc,
                                          s.stride_c, batches));
    else
      KILN_CUDA(cublasDgemmStridedBatched(handle, op_b, op_a, N, M, K, &one, b, ldb, s.stride_b, a, lda, s.stride_a, &zero, c, ldc,
                                          s.stride_c, batches));
  }
}

template <class P, int G> struct matmul_plan {
  static constexpr group_info grp = P::plan.groups[G];
  static constexpr int product = grp.anchor >= 0 ? grp.anchor : grp.root;
  static constexpr node mm = P::nodes[std::size_t(product)];
  static constexpr node na = P::nodes[std::size_t(mm.in[0])];
  static constexpr node nb = P::nodes[std::size_t(mm.in[1])];
  static constexpr matmul_attrs attrs = matmul_attrs::of(mm);
  static constexpr bool ta = attrs.transpose_a, tb = attrs.transpose_b;
  // A row-folded contraction [?,R,M]^T x [?,R,N] -> [M,N] is the 2-D batch contraction
  // [?·R,M]^T x [?·R,N]: the operands are contiguous, so it is one GEMM of depth batch·R.
  static constexpr bool fold = attrs.fold_rows;
  static constexpr int ra = na.out.rank, rb = nb.out.rank;
  static_assert(!fold || (ta && !tb && ra == 3 && rb == 3 && na.out.dim[1] == nb.out.dim[1]),
                "a row-folded matmul contracts [?,R,M]^T with [?,R,N]");
  using T = ctype<mm.type>;
  using epilogue = fused_plan<P, G, grp.root, grp.root>;

  static gemm_shape shape_at(std::int64_t batch_size) {
    gemm_shape s;
    s.ta = ta;
    s.tb = tb;
    if constexpr (fold) {
      s.M = na.out.dim[2];
      s.N = nb.out.dim[2];
      s.K = na.out.extent(0, batch_size) * na.out.dim[1];
    } else {
      s.M = ta ? na.out.extent(ra - 1, batch_size) : na.out.extent(ra - 2, batch_size);
      s.K = ta ? na.out.extent(ra - 2, batch_size) : na.out.extent(ra - 1, batch_size);
      s.N = tb ? nb.out.extent(rb - 2, batch_size) : nb.out.extent(rb - 1, batch_size);
      if constexpr (ra == 3) {
        const std::int64_t batches = na.out.extent(0, batch_size);
        if (rb == 2 && !ta) {
          // Shared weights: the rows of every batch entry are one taller matrix.
          s.M *= batches;
        } else {
          s.batches = batches;
          s.stride_a = s.M * s.K;
          s.stride_b = rb == 3 ? s.K * s.N : 0;
          s.stride_c = s.M * s.N;
        }
      }
    }
    return s;
  }

  static void launch(const launch_context& ctx, cublasHandle_t handle) {
    T* c = static_cast<T*>(ctx.values[product]);
    gemm<T>(handle, shape_at(ctx.batch), static_cast<const T*>(ctx.values[mm.in[0]]), static_cast<const T*>(ctx.values[mm.in[1]]), c);
    if constexpr (grp.anchor >= 0) epilogue::launch(ctx, ctx.values[grp.root]);
  }
};

}  // namespace kiln::cuda_detail
