// Indexing: gather (TF semantics, with batch_dims 0 or 1) and one_hot (built from fusable ops).
#pragma once
#include "layout.hpp"
#include "reduce.hpp"

namespace kiln {

// out = params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis+1:]
// batch_dims = 1 gathers per row: gather(q[B,A], actions[B], 1, 1) -> q[b, actions[b]].
constexpr tensor gather(tensor params, tensor indices, int axis = 0, int batch_dims = 0,
                        std::source_location loc = std::source_location::current()) {
  if (!params.valid()) return detail::invalid_of(params);
  if (!indices.valid()) return detail::invalid_of(indices);
  graph& g = *params.g;
  const shape& sp = params.shape();
  const shape& si = indices.shape();
  if (!is_integer(indices.type())) return g.fail_with("gather", loc, "indices must be i32 or i64, got ", indices.type(), " ", si);
  if (axis < 0) axis += sp.rank;
  if (axis < 0 || axis >= sp.rank) return g.fail_with("gather", loc, "axis ", axis, " is out of range for ", sp);
  if (batch_dims < 0 || batch_dims > 1 || batch_dims > axis || batch_dims > si.rank)
    return g.fail_with("gather", loc, "batch_dims must be 0 or 1 and at most axis, got ", batch_dims);
  if (batch_dims == 1 && sp.dim[0] != si.dim[0])
    return g.fail_with("gather", loc, "batch dims differ: params ", sp, " vs indices ", si);
  if (sp.dim[axis] == batch) return g.fail_with("gather", loc, "cannot gather along the batch dim of ", sp);
  node n;
  n.kind = op::gather;
  n.type = params.type();
  n.n_in = 2;
  n.in[0] = params.id;
  n.in[1] = indices.id;
  gather_attrs{axis, batch_dims}.store(n);
  shape out;
  for (int d = 0; d < axis; ++d) out.dim[out.rank++] = sp.dim[d];
  for (int d = batch_dims; d < si.rank; ++d) out.dim[out.rank++] = si.dim[d];
  for (int d = axis + 1; d < sp.rank; ++d) out.dim[out.rank++] = sp.dim[d];
  if (out.rank > max_rank) return g.fail_with("gather", loc, "result rank exceeds ", max_rank);
  for (int d = 1; d < out.rank; ++d)
    if (out.dim[d] == batch) return g.fail_with("gather", loc, "the batch dim of the indices ", si, " must lead the result");
  n.out = out;
  return g.add(n, loc);
}

// out[..., j] = on if indices[...] == j else off.
constexpr tensor one_hot(tensor indices, std::int64_t depth, dtype type = dtype::f32, double on = 1, double off = 0,
                         std::source_location loc = std::source_location::current()) {
  if (!indices.valid()) return detail::invalid_of(indices);
  graph& g = *indices.g;
  if (!is_integer(indices.type())) return g.fail_with("one_hot", loc, "indices must be i32 or i64, got ", indices.type());
  tensor column = expand_dims(indices, -1, loc);
  tensor hit = equal(column, g.iota(shape{depth}, indices.type(), 0, 1, loc), loc);
  return where(hit, g.scalar(on, type, loc), g.scalar(off, type, loc), loc);
}

// ---- gradients ------------------------------------------------------------------------------------

// A scatter-add written as a one-hot product summed over the index dims. With P =
// params.shape[:axis], I = the index dims in the output, R = params.shape[axis+1:]:
// dparams[P, d, R] = sum_I g[P, I, 1, R] * one_hot(indices, depth)[.., I, d, 1...].
// The indices (integers) carry nothing.
KILN_VJP(gather) {
  using detail::no_loc;
  if (!w.needs(0)) return;
  const gather_attrs a = gather_attrs::of(w.n);
  const int axis = a.axis, bd = a.batch_dims;
  const tensor params = w.x(0), indices = w.x(1);
  const shape ps = params.shape(), is = indices.shape(), gs = w.n.out;
  const std::int64_t depth = ps.dim[axis];
  const int ri = is.rank - bd, rest = ps.rank - axis - 1;
  if (gs.rank + 1 > max_rank) {
    w.g.fail_with("gradients", no_loc, "the gradient of gather needs rank ", gs.rank + 1, " (max ", max_rank, ")");
    return;
  }
  shape ge;  // gy with a unit dim where the gathered axis goes
  for (int d = 0; d < gs.rank + 1; ++d) {
    const int pos = axis + ri;
    ge.dim[ge.rank++] = d < pos ? gs.dim[d] : d == pos ? 1 : gs.dim[d - 1];
  }
  shape os;  // one_hot(indices) [is..., depth] laid out to broadcast against ge
  if (bd == 1) {
    os.dim[os.rank++] = is.dim[0];
    for (int d = 1; d < axis; ++d) os.dim[os.rank++] = 1;
    for (int d = 1; d < is.rank; ++d) os.dim[os.rank++] = is.dim[d];
  } else {
    for (int d = 0; d < is.rank; ++d) os.dim[os.rank++] = is.dim[d];
  }
  os.dim[os.rank++] = depth;
  for (int d = 0; d < rest; ++d) os.dim[os.rank++] = 1;
  const tensor oh = reshape(one_hot(indices, depth, w.n.type, 1, 0, no_loc), os, no_loc);
  tensor prod = mul(reshape(w.gy, ge, no_loc), oh, no_loc);
  if (ri > 0) prod = reduce_sum(prod, grad_detail::axis_run(axis, axis + ri - 1), false, no_loc);
  w.give(0, prod);
}

}  // namespace kiln
