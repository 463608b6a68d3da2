// Sliding windows over NHWC images: the ops behind conv2d and max_pool2d (ops/conv.hpp,
// ops/pool.hpp). Each is one kernel per backend instead of the many strided copies a
// composition of slices needs, and each has a closed-form adjoint, so gradients stay in the
// family:
//
//   im2col(x)          [?,H,W,C] -> [?,Ho·Wo,KH·KW·C]   cols[n, p·Wo+q, (i·KW+j)·C+c] = x[n, s·p+i-top, s·q+j-left, c]
//   col2im(cols)       the adjoint of im2col: [?,Ho·Wo,KH·KW·C] -> [?,H,W,C], overlapping entries summed
//   max_pool(x)        [?,H,W,C] -> [?,Ho,Wo,C]  max over the KH×KW window (entries outside the image never win)
//   max_pool_grad(x,g) [?,Ho,Wo,C] g routed to the first maximum of each window of x -> [?,H,W,C]
//   max_pool_select(x,g) the adjoint of max_pool_grad in g: g [?,H,W,C] read at those maxima -> [?,Ho,Wo,C]
//
// Entries outside the image read as 0 in im2col (zero padding). The geometry is the node's
// window_geometry (graph/attributes.hpp).
#pragma once
#include <cstdint>
#include "elementwise.hpp"

namespace kiln {

// TensorFlow's padding modes. valid: windows lie inside the input, out = (n - k) / s + 1.
// same: out = ceil(n / s), padded by max((out - 1)·s + k - n, 0) split as total/2 before and the
// rest after (TF puts the odd element at the end).
enum class padding : std::uint8_t { valid, same };

namespace detail {

struct axis_window {
  std::int64_t out = 0, before = 0, after = 0;
};

constexpr axis_window axis_extent(std::int64_t n, std::int64_t k, std::int64_t s, padding p) {
  if (p == padding::valid) return {n >= k ? (n - k) / s + 1 : 0, 0, 0};
  const std::int64_t out = (n + s - 1) / s, total = (out - 1) * s + k - n;
  return {out, total > 0 ? total / 2 : 0, total > 0 ? total - total / 2 : 0};
}

// The geometry of a kh×kw window moved by `stride` over an h×w image.
constexpr window_geometry geometry(std::int64_t h, std::int64_t w, std::int64_t kh, std::int64_t kw, std::int64_t stride, padding p) {
  const axis_window y = axis_extent(h, kh, stride, p), x = axis_extent(w, kw, stride, p);
  return {kh, kw, stride, y.before, x.before, y.after, x.after, y.out, x.out};
}

constexpr tensor window_op(op kind, tensor a, tensor b, const shape& out, const window_geometry& w) {
  graph& g = *a.g;
  node n;
  n.kind = kind;
  n.type = a.type();
  n.out = out;
  n.n_in = b.valid() ? 2 : 1;
  n.in[0] = a.id;
  if (b.valid()) n.in[1] = b.id;
  w.store(n);
  return g.add(n, no_loc);
}

// The callers (conv2d, max_pool2d and the gradient rules) have checked ranks, dtypes and sizes.
constexpr tensor im2col(tensor x, const window_geometry& w) {
  const shape s = x.shape();
  return window_op(op::im2col, x, tensor{}, shape{s.dim[0], w.ho * w.wo, w.kh * w.kw * s.dim[3]}, w);
}

constexpr tensor col2im(tensor cols, const shape& image, const window_geometry& w) {
  return window_op(op::col2im, cols, tensor{}, image, w);
}

constexpr tensor max_pool(tensor x, const window_geometry& w) {
  const shape s = x.shape();
  return window_op(op::max_pool, x, tensor{}, shape{s.dim[0], w.ho, w.wo, s.dim[3]}, w);
}

constexpr tensor max_pool_grad(tensor x, tensor g, const window_geometry& w) { return window_op(op::max_pool_grad, x, g, x.shape(), w); }

constexpr tensor max_pool_select(tensor x, tensor g, const window_geometry& w) {
  const shape s = x.shape();
  return window_op(op::max_pool_select, x, g, shape{s.dim[0], w.ho, w.wo, s.dim[3]}, w);
}

}  // namespace detail

// ---- gradients: each op's adjoint is another op of the family. max_pool's routing depends on x
// only through which entry is the maximum, a piecewise-constant choice, so max_pool_grad and
// max_pool_select are linear in g with zero derivative in x.

KILN_VJP(im2col) { w.give(0, detail::col2im(w.gy, w.x(0).shape(), window_geometry::of(w.n))); }
KILN_VJP(col2im) { w.give(0, detail::im2col(w.gy, window_geometry::of(w.n))); }
KILN_VJP(max_pool) { w.give(0, detail::max_pool_grad(w.x(0), w.gy, window_geometry::of(w.n))); }
KILN_VJP(max_pool_grad) {
  if (w.needs(1)) w.give(1, detail::max_pool_select(w.x(0), w.gy, window_geometry::of(w.n)));
}
KILN_VJP(max_pool_select) {
  if (w.needs(1)) w.give(1, detail::max_pool_grad(w.x(0), w.gy, window_geometry::of(w.n)));
}

}  // namespace kiln
