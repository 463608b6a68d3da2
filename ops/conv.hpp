// 2-D convolution (NHWC) and its two gradients, as ops the graph keeps until lowering:
//
//   conv2d(x, w)                  x [?,H,W,C], w [KH,KW,C,F] -> [?,Ho,Wo,F]   (tf.nn.conv2d)
//   conv2d_backprop_input(g, w)   g [?,Ho,Wo,F] -> dx [?,H,W,C]               (tf's Conv2DBackpropInput)
//   conv2d_backprop_filter(x, g)  -> dw [KH,KW,C,F]                           (tf's Conv2DBackpropFilter)
//
// The geometry (window_geometry: kernel, stride, padding, output size) is the node's attribute.
// Lowering (KILN_LOWER) turns them into the window ops of ops/window.hpp and one GEMM each:
//   conv2d                 im2col(x) [?,Ho·Wo,KH·KW·C] x w [KH·KW·C,F], viewed as [?,Ho,Wo,F]
//   conv2d_backprop_input  col2im(g [?,Ho·Wo,F] x w^T)
//   conv2d_backprop_filter one GEMM folding every output pixel of the batch into its rows
// A bias and an activation applied to conv2d's result run in that GEMM's epilogue (the planner
// anchors a matmul into its elementwise consumer through the view). A 1×1 kernel at stride 1
// reads every pixel once: the image itself is the column matrix.
#pragma once
#include <cstdint>
#include <source_location>
#include "elementwise.hpp"
#include "layout.hpp"
#include "matmul.hpp"
#include "reduce.hpp"
#include "rules.hpp"
#include "window.hpp"

namespace kiln {

namespace conv_detail {

using detail::loc_t;
using detail::no_loc;

constexpr tensor conv_op(op kind, tensor a, tensor b, const shape& out, const window_geometry& geo, const loc_t& loc) {
  node n;
  n.kind = kind;
  n.type = a.type();
  n.out = out;
  n.n_in = 2;
  n.in[0] = a.id;
  n.in[1] = b.id;
  geo.store(n);
  return a.g->add(n, loc);
}

constexpr bool pointwise(const window_geometry& geo) { return geo.kh == 1 && geo.kw == 1 && geo.stride == 1; }

// w [KH,KW,C,F] as the [KH·KW·C, F] matrix the GEMMs multiply by (a free view)
constexpr tensor weight_matrix(tensor w) {
  const shape ws = w.shape();
  return reshape(w, shape{ws.dim[0] * ws.dim[1] * ws.dim[2], ws.dim[3]}, no_loc);
}

// x's windows as rows: [?,Ho·Wo,KH·KW·C]
constexpr tensor columns(tensor x, const window_geometry& geo) {
  const shape xs = x.shape();
  if (pointwise(geo)) return reshape(x, shape{xs.dim[0], geo.ho * geo.wo, xs.dim[3]}, no_loc);
  return detail::im2col(x, geo);
}

// g [?,Ho,Wo,F] as rows [?,Ho·Wo,F] (a free view)
constexpr tensor pixel_rows(tensor g) {
  const shape gs = g.shape();
  return reshape(g, shape{gs.dim[0], gs.dim[1] * gs.dim[2], gs.dim[3]}, no_loc);
}

}  // namespace conv_detail

// y[n, p, q, f] = sum_{i,j,c} x_padded[n, s·p + i, s·q + j, c] · w[i, j, c, f]  (tf.nn.conv2d, NHWC)
// x [batch,H,W,C], w [KH,KW,C,F] -> [batch,Ho,Wo,F]; any stride >= 1 (the same for both axes);
// TensorFlow's 'valid' and 'same' padding.
constexpr tensor conv2d(tensor x, tensor w, std::int64_t stride = 1, padding pad = padding::valid,
                        std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  if (!w.valid()) return detail::invalid_of(w);
  graph& g = *x.g;
  const shape xs = x.shape(), ws = w.shape();
  if (xs.rank != 4 || ws.rank != 4 || ws.dynamic())
    return g.fail_with("conv2d", loc, "expects x [batch,H,W,C] and w [KH,KW,C,F], got x ", xs, " and w ", ws);
  if (x.type() != w.type() || !is_floating(x.type()))
    return g.fail_with("conv2d", loc, "x and w must share a floating dtype, got ", x.type(), " ", xs, " and ", w.type(), " ", ws);
  if (xs.dim[3] != ws.dim[2]) return g.fail_with("conv2d", loc, "x ", xs, " has ", xs.dim[3], " channels but w ", ws, " expects ", ws.dim[2]);
  if (stride < 1) return g.fail_with("conv2d", loc, "stride must be >= 1, got ", stride, " (x ", xs, ", w ", ws, ")");
  if (pad == padding::valid && (xs.dim[1] < ws.dim[0] || xs.dim[2] < ws.dim[1]))
    return g.fail_with("conv2d", loc, "the kernel of w ", ws, " is larger than the image of x ", xs, " with padding::valid");
  const window_geometry geo = detail::geometry(xs.dim[1], xs.dim[2], ws.dim[0], ws.dim[1], stride, pad);
  return conv_detail::conv_op(op::conv2d, x, w, shape{xs.dim[0], geo.ho, geo.wo, ws.dim[3]}, geo, loc);
}

// conv2d(x, w) + bias [F]; the bias runs in the GEMM's epilogue once lowered.
constexpr tensor conv2d(tensor x, tensor w, tensor bias, std::int64_t stride = 1, padding pad = padding::valid,
                        std::source_location loc = std::source_location::current()) {
  const tensor y = conv2d(x, w, stride, pad, loc);
  if (!y.valid()) return y;
  if (!bias.valid()) return detail::invalid_of(bias);
  const shape bs = bias.shape();
  if (bs.rank != 1 || bs.dim[0] != y.shape().dim[3] || bias.type() != x.type())
    return x.g->fail_with("conv2d", loc, "bias must be ", x.type(), " [", y.shape().dim[3], "] for w ", w.shape(), ", got ", bias.type(), " ", bs);
  return add(y, bias, loc);
}

namespace detail {

// The gradients of conv2d(x, w) for an upstream g of its output's shape; x's and w's shapes
// come from the forward node (the callers are the gradient rules, which have checked them).
constexpr tensor conv2d_backprop_input(tensor g, tensor w, const shape& image, const window_geometry& geo) {
  return conv_detail::conv_op(op::conv2d_backprop_input, g, w, image, geo, no_loc);
}
constexpr tensor conv2d_backprop_filter(tensor x, tensor g, const shape& filter, const window_geometry& geo) {
  return conv_detail::conv_op(op::conv2d_backprop_filter, x, g, filter, geo, no_loc);
}

}  // namespace detail

// ---- gradients: conv2d's adjoints are the two backprop ops; theirs come from their lowering
// (op table: decompose), which is linear in each input, so second derivatives work.

KILN_VJP(conv2d) {
  const window_geometry geo = window_geometry::of(w.n);
  if (w.needs(0)) w.give(0, detail::conv2d_backprop_input(w.gy, w.x(1), w.x(0).shape(), geo));
  if (w.needs(1)) w.give(1, detail::conv2d_backprop_filter(w.x(0), w.gy, w.x(1).shape(), geo));
}

// ---- lowering ------------------------------------------------------------------------------------

// [?,Ho·Wo,KH·KW·C] x [KH·KW·C,F], viewed as [?,Ho,Wo,F]
KILN_LOWER(conv2d) {
  using namespace conv_detail;
  const tensor x{&g, n.in[0]}, w{&g, n.in[1]};
  const window_geometry geo = window_geometry::of(n);
  return reshape(matmul(columns(x, geo), weight_matrix(w), false, false, no_loc), n.out, no_loc);
}

// dx = col2im(g_rows x w^T): the transpose of im2col applied to the gradient of the columns
KILN_LOWER(conv2d_backprop_input) {
  using namespace conv_detail;
  const tensor gy{&g, n.in[0]}, w{&g, n.in[1]};
  const window_geometry geo = window_geometry::of(n);
  const tensor dcols = matmul(pixel_rows(gy), weight_matrix(w), false, true, no_loc);
  if (pointwise(geo)) return reshape(dcols, n.out, no_loc);
  return detail::col2im(dcols, n.out, geo);
}

// dw = sum over the batch and every output pixel of columns^T g_rows: one GEMM whose rows are
// every (image, pixel) pair (detail::folded_contraction), or, with a static batch, a batched
// product summed over the batch
KILN_LOWER(conv2d_backprop_filter) {
  using namespace conv_detail;
  const tensor x{&g, n.in[0]}, gy{&g, n.in[1]};
  const window_geometry geo = window_geometry::of(n);
  const tensor cols = columns(x, geo), rows = pixel_rows(gy);
  tensor dw2;
  if (detail::can_fold_rows(cols.shape(), rows.shape())) {
    dw2 = detail::folded_contraction(cols, rows);
  } else {
    dw2 = matmul(cols, rows, true, false, no_loc);
    if (dw2.valid() && dw2.rank() == 3) dw2 = reduce_sum(dw2, axes{0}, false, no_loc);
  }
  return reshape(dw2, n.out, no_loc);
}

}  // namespace kiln
