// Matrix products: [M,K]x[K,N], batched [B,M,K]x[B,K,N], and [B,M,K]x[K,N] (shared weights);
// K may be the dynamic batch dim of 2-D operands ([?,M]^T x [?,N], the weight gradient of a layer).
// Internally (gradients) also the row-folded contraction [?,R,M]^T x [?,R,N] -> [M,N] summed over
// the batch and R: the weight gradient of shared weights (a conv layer's [KH·KW·C, F]).
#pragma once
#include "elementwise.hpp"
#include "layout.hpp"

namespace kiln {

constexpr tensor matmul(tensor a, tensor b, bool transpose_a = false, bool transpose_b = false,
                        std::source_location loc = std::source_location::current()) {
  if (!a.valid()) return detail::invalid_of(a);
  if (!b.valid()) return detail::invalid_of(b);
  graph& g = *a.g;
  const node& na = a.info();
  const node& nb = b.info();
  if (na.type != nb.type || !is_floating(na.type))
    return g.fail_with("matmul", loc, "operands must share a floating dtype, got ", na.type, " ", na.out, " and ", nb.type, " ", nb.out);
  const shape& sa = na.out;
  const shape& sb = nb.out;
  if (sa.rank < 2 || sa.rank > 3 || sb.rank < 2 || sb.rank > 3 || (sa.rank == 2 && sb.rank == 3))
    return g.fail_with("matmul", loc, "expects [M,K]x[K,N], [B,M,K]x[B,K,N] or [B,M,K]x[K,N], got ", sa, " and ", sb);
  const int ra = sa.rank, rb = sb.rank;
  std::int64_t m = transpose_a ? sa.dim[ra - 1] : sa.dim[ra - 2];
  std::int64_t ka = transpose_a ? sa.dim[ra - 2] : sa.dim[ra - 1];
  std::int64_t kb = transpose_b ? sb.dim[rb - 1] : sb.dim[rb - 2];
  std::int64_t n = transpose_b ? sb.dim[rb - 2] : sb.dim[rb - 1];
  // Contracting over the dynamic batch dim (x^T g for x [?,K], g [?,N]: a weight gradient) is
  // allowed for 2-D operands; the result is static.
  const bool batch_contraction = ka == batch && kb == batch && ra == 2 && rb == 2;
  if (ka != kb || (ka == batch && !batch_contraction))
    return g.fail_with("matmul", loc, "inner dimensions differ: ", sa, transpose_a ? "^T" : "", " x ", sb, transpose_b ? "^T" : "");
  if (n == batch || (ra == 3 && m == batch))
    return g.fail_with("matmul", loc, "the batch dimension must be the leading dimension of the result, got ", sa, " x ", sb);
  if (ra == 3 && rb == 3 && sa.dim[0] != sb.dim[0])
    return g.fail_with("matmul", loc, "batch sizes differ: ", sa, " x ", sb);
  node r;
  r.kind = op::matmul;
  r.type = na.type;
  r.n_in = 2;
  r.in[0] = a.id;
  r.in[1] = b.id;
  matmul_attrs{transpose_a, transpose_b, false}.store(r);
  r.out = ra == 3 ? shape{sa.dim[0], m, n} : shape{m, n};
  return g.add(r, loc);
}

namespace detail {

// sum over n and r of a[n,r,:]^T b[n,r,:]: a [?,R,M], b [?,R,N] -> [M,N]. One GEMM over every
// row of the batch instead of a batched product [?,M,N] and a reduction over the batch.
constexpr tensor folded_contraction(tensor a, tensor b) {
  const shape sa = a.shape(), sb = b.shape();
  node r;
  r.kind = op::matmul;
  r.type = a.type();
  r.n_in = 2;
  r.in[0] = a.id;
  r.in[1] = b.id;
  matmul_attrs{.transpose_a = true, .transpose_b = false, .fold_rows = true}.store(r);
  r.out = shape{sa.dim[2], sb.dim[2]};
  return a.g->add(r, no_loc);
}

constexpr bool can_fold_rows(const shape& sa, const shape& sb) {
  return sa.rank == 3 && sb.rank == 3 && sa.dynamic() && sb.dynamic() && sa.dim[1] == sb.dim[1];
}

}  // namespace detail

// ---- gradients ------------------------------------------------------------------------------------

namespace grad_detail {

// op(a) op(b) for the operand ranks gradients produce, beyond what matmul() accepts:
// [M,K] x [B,K,N] is computed as (op(b)^T op(a)^T)^T. (dW = x^T g for x [?,K], a contraction over
// the dynamic batch dim, is an ordinary matmul.)
constexpr tensor mm(tensor a, tensor b, bool ta, bool tb) {
  using detail::no_loc;
  if (!a.valid()) return a;
  if (!b.valid()) return b;
  const shape sa = a.shape(), sb = b.shape();
  if (sa.rank == 2 && sb.rank == 3) return transpose(mm(b, a, !tb, !ta), {0, 2, 1}, no_loc);
  return matmul(a, b, ta, tb, no_loc);
}

}  // namespace grad_detail

// C = op(A) op(B). Shared weights ([B,M,K] x [K,N]) have their dB summed over the batch by the
// walker, or computed as one GEMM folding the batch into the rows (detail::folded_contraction).
KILN_VJP(matmul) {
  using grad_detail::mm;
  const matmul_attrs m = matmul_attrs::of(w.n);
  const bool ta = m.transpose_a, tb = m.transpose_b;
  const tensor a = w.x(0), b = w.x(1), gy = w.gy;
  const bool da = w.needs(0), db = w.needs(1);
  const bool shared_b = b.valid() && b.rank() == 2 && a.rank() == 3 && detail::can_fold_rows(a.shape(), gy.shape());
  if (!ta && !tb) {
    if (da) w.give(0, mm(gy, b, false, true));
    if (db) w.give(1, shared_b ? detail::folded_contraction(a, gy) : mm(a, gy, true, false));
  } else if (!ta && tb && shared_b) {
    if (da) w.give(0, mm(gy, b, false, false));
    if (db) w.give(1, detail::folded_contraction(gy, a));
  } else if (ta && !tb) {  // also the folded contraction: C = A^T B over the rows of the batch
    if (da) w.give(0, mm(b, gy, false, true));
    if (db) w.give(1, mm(a, gy, false, false));
  } else if (!ta && tb) {
    if (da) w.give(0, mm(gy, b, false, false));
    if (db) w.give(1, mm(gy, a, true, false));
  } else {
    if (da) w.give(0, mm(b, gy, true, true));
    if (db) w.give(1, mm(gy, a, true, true));
  }
}

}  // namespace kiln
