// 2-D pooling (NHWC). Max pooling is one window op (ops/window.hpp) with its own gradient
// kernel. Average pooling is a composition of existing ops: with stride == pool (Keras' default)
// the windows tile the image: a crop (valid) or pad (same), a free reshape to [?,Ho,p,Wo,p,C]
// and a mean over the two window axes; other strides sum the p·p strided windows of
// nn/conv.hpp elementwise.
#pragma once
#include <cstdint>
#include <limits>
#include <source_location>
#include "../ops/reduce.hpp"
#include "conv.hpp"

namespace kiln {

namespace spatial_detail {

enum class pool_kind : std::uint8_t { max, average };

constexpr std::string_view pool_name(pool_kind k) { return k == pool_kind::max ? "max_pool2d" : "avg_pool2d"; }

// x [?,H,W,C] (or [1,H,W,1] for the window counts) padded or cropped to [?,Ho·p,Wo·p,C] and
// reduced over each p×p tile.
constexpr tensor tile_reduce(tensor x, std::int64_t p, const axis_window& h, const axis_window& w, padding pad, op reduction, double pad_value) {
  const shape xs = x.shape();
  tensor t = x;
  if (pad == padding::valid) {
    t = slice(t, 1, 0, h.out * p, no_loc);
    t = slice(t, 2, 0, w.out * p, no_loc);
  } else {
    t = spatial_detail::pad(t, 1, h.before, h.after, pad_value);
    t = spatial_detail::pad(t, 2, w.before, w.after, pad_value);
  }
  t = reshape(t, shape{xs.dim[0], h.out, p, w.out, p, xs.dim[3]}, no_loc);
  return detail::reduce(reduction, t, axes{2, 4}, false, no_loc);
}

constexpr tensor pool2d(pool_kind k, tensor x, std::int64_t p, std::int64_t s, padding pad, const loc_t& loc) {
  if (!x.valid()) return x;
  graph& g = *x.g;
  const std::string_view name = pool_name(k);
  const shape xs = x.shape();
  if (xs.rank != 4) return g.fail_with(name, loc, "expects x [batch,H,W,C], got ", x.type(), " ", xs);
  if (!is_floating(x.type())) return g.fail_with(name, loc, "expects f32 or f64, got ", x.type(), " ", xs);
  if (s == 0) s = p;
  if (p < 1 || s < 1) return g.fail_with(name, loc, "pool and stride must be >= 1, got pool ", p, " and stride ", s, " for x ", xs);
  if (pad == padding::valid && (xs.dim[1] < p || xs.dim[2] < p))
    return g.fail_with(name, loc, "the pool window ", p, "x", p, " is larger than the image of x ", xs, " with padding::valid");
  if (k == pool_kind::max) return detail::max_pool(x, detail::geometry(xs.dim[1], xs.dim[2], p, p, s, pad));
  const axis_window h = window(xs.dim[1], p, s, pad), w = window(xs.dim[2], p, s, pad);
  // Padded entries are not counted by an average (TF's semantics).
  const bool counts_vary = pad == padding::same && (h.before + h.after + w.before + w.after) > 0;
  if (s == p) {
    if (!counts_vary) return tile_reduce(x, p, h, w, pad, op::reduce_mean, 0.0);
    const tensor ones = g.fill(shape{1, xs.dim[1], xs.dim[2], 1}, 1, x.type(), no_loc);
    return div(tile_reduce(x, p, h, w, pad, op::reduce_sum, 0.0), tile_reduce(ones, p, h, w, pad, op::reduce_sum, 0.0), loc);
  }
  const window_set win = windows(x, p, p, s, pad, 0.0);
  tensor acc = win.parts[0];
  for (std::size_t i = 1; i < win.parts.size(); ++i) acc = add(acc, win.parts[i], no_loc);
  if (!counts_vary) return div(acc, double(p * p), loc);
  const window_set ones = windows(g.fill(shape{1, xs.dim[1], xs.dim[2], 1}, 1, x.type(), no_loc), p, p, s, pad, 0.0);
  tensor count = ones.parts[0];
  for (std::size_t i = 1; i < ones.parts.size(); ++i) count = add(count, ones.parts[i], no_loc);
  return div(acc, count, loc);
}

}  // namespace spatial_detail

// Keras MaxPooling2D / tf.nn.max_pool2d (NHWC): the max over each pool×pool window; stride 0
// means stride = pool. The gradient goes to the first maximum of each window in row-major order
// (TF's MaxPoolGrad), also when several entries tie.
constexpr tensor max_pool2d(tensor x, std::int64_t pool, std::int64_t stride = 0, padding pad = padding::valid,
                            std::source_location loc = std::source_location::current()) {
  return spatial_detail::pool2d(spatial_detail::pool_kind::max, x, pool, stride, pad, loc);
}

// Keras AveragePooling2D / tf.nn.avg_pool2d (NHWC); with padding::same a window averages only
// the entries inside the image.
constexpr tensor avg_pool2d(tensor x, std::int64_t pool, std::int64_t stride = 0, padding pad = padding::valid,
                            std::source_location loc = std::source_location::current()) {
  return spatial_detail::pool2d(spatial_detail::pool_kind::average, x, pool, stride, pad, loc);
}

// Keras GlobalAveragePooling2D: [batch,H,W,C] -> [batch,C].
constexpr tensor global_average_pooling(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (x.rank() != 4 || !is_floating(x.type()))
    return x.g->fail_with("global_average_pooling", loc, "expects f32 or f64 x [batch,H,W,C], got ", x.type(), " ", x.shape());
  return reduce_mean(x, axes{1, 2}, false, loc);
}

// Keras GlobalMaxPooling2D: [batch,H,W,C] -> [batch,C].
constexpr tensor global_max_pooling(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (x.rank() != 4 || !is_floating(x.type()))
    return x.g->fail_with("global_max_pooling", loc, "expects f32 or f64 x [batch,H,W,C], got ", x.type(), " ", x.shape());
  return reduce_max(x, axes{1, 2}, false, loc);
}

}  // namespace kiln
