// Sliding windows over NHWC images: the ops behind conv2d and max_pool2d (nn/conv.hpp,
// nn/pool.hpp). Each is one kernel per backend instead of the many strided copies a
// composition of slices needs, and each has a closed-form adjoint, so gradients stay in the
// family:
//
//   im2col(x)          [?,H,W,C] -> [?,Ho·Wo,KH·KW·C]   cols[n, p·Wo+q, (i·KW+j)·C+c] = x[n, s·p+i-top, s·q+j-left, c]
//   col2im(cols)       the adjoint of im2col: [?,Ho·Wo,KH·KW·C] -> [?,H,W,C], overlapping entries summed
//   max_pool(x)        [?,H,W,C] -> [?,Ho,Wo,C]  max over the KH×KW window (entries outside the image never win)
//   max_pool_grad(x,g) [?,Ho,Wo,C] g routed to the first maximum of each window of x -> [?,H,W,C]
//   max_pool_select(x,g) the adjoint of max_pool_grad in g: g [?,H,W,C] read at those maxima -> [?,Ho,Wo,C]
//
// Entries outside the image read as 0 in im2col (zero padding). The geometry lives in the node:
// a = {KH, KW, stride, top, left, Ho}, k = Wo, value = positive_only.
#pragma once
#include <cstdint>
#include "elementwise.hpp"

namespace kiln {

// TensorFlow's padding modes. valid: windows lie inside the input, out = (n - k) / s + 1.
// same: out = ceil(n / s), padded by max((out - 1)·s + k - n, 0) split as total/2 before and the
// rest after (TF puts the odd element at the end).
enum class padding : std::uint8_t { valid, same };

struct window_geometry {
  std::int64_t kh = 1, kw = 1, stride = 1, top = 0, left = 0, ho = 0, wo = 0;
  // max_pool_grad / max_pool_select only: route only through maxima > 0. relu(h) feeding a max
  // pool has relu'(h) = 0 exactly where the maximum it routes to is 0, so the gradient rule of
  // relu folds its mask into the routing instead of a separate pass over the image.
  bool positive_only = false;
};

namespace detail {

struct axis_window {
  std::int64_t out = 0, before = 0;
};

constexpr axis_window axis_extent(std::int64_t n, std::int64_t k, std::int64_t s, padding p) {
  if (p == padding::valid) return {n >= k ? (n - k) / s + 1 : 0, 0};
  const std::int64_t out = (n + s - 1) / s, total = (out - 1) * s + k - n;
  return {out, total > 0 ? total / 2 : 0};
}

// The geometry of a kh×kw window moved by `stride` over an h×w image.
constexpr window_geometry geometry(std::int64_t h, std::int64_t w, std::int64_t kh, std::int64_t kw, std::int64_t stride, padding p) {
  const axis_window y = axis_extent(h, kh, stride, p), x = axis_extent(w, kw, stride, p);
  return {kh, kw, stride, y.before, x.before, y.out, x.out};
}

constexpr void set_geometry(node& n, const window_geometry& w) {
  n.a[0] = w.kh;
  n.a[1] = w.kw;
  n.a[2] = w.stride;
  n.a[3] = w.top;
  n.a[4] = w.left;
  n.a[5] = w.ho;
  n.k = w.wo;
  n.value = w.positive_only ? 1 : 0;
}

constexpr window_geometry geometry_of(const node& n) { return {n.a[0], n.a[1], n.a[2], n.a[3], n.a[4], n.a[5], n.k, n.value != 0}; }

constexpr tensor window_op(op kind, tensor a, tensor b, const shape& out, const window_geometry& w) {
  graph& g = *a.g;
  node n;
  n.kind = kind;
  n.type = a.type();
  n.out = out;
  n.n_in = b.valid() ? 2 : 1;
  n.in[0] = a.id;
  if (b.valid()) n.in[1] = b.id;
  set_geometry(n, w);
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
}  // namespace kiln
