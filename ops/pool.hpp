// 2-D pooling (NHWC). max_pool2d is the window op max_pool (ops/window.hpp), one kernel with its
// own gradient kernel. avg_pool2d is an op the graph keeps until lowering, which turns it into a
// composition of existing ops: with stride == pool (Keras' default) the windows tile the image, so
// a crop (valid) or pad (same), a free reshape to [?,Ho,p,Wo,p,C] and a mean over the two window
// axes; other strides sum the p·p strided windows elementwise. Its gradient is its lowering's.
#pragma once
#include <cstdint>
#include <source_location>
#include <vector>
#include "elementwise.hpp"
#include "layout.hpp"
#include "reduce.hpp"
#include "rules.hpp"
#include "window.hpp"

namespace kiln {

namespace pool_detail {

using detail::axis_window;
using detail::loc_t;
using detail::no_loc;

// x with `before` and `after` entries of `value` around `axis`.
constexpr tensor pad(tensor x, int axis, std::int64_t before, std::int64_t after, double value) {
  if (!x.valid() || (before == 0 && after == 0)) return x;
  graph& g = *x.g;
  const dtype t = x.type();
  shape sb = x.shape(), sa = x.shape();
  sb.dim[axis] = before;
  sa.dim[axis] = after;
  if (before == 0) return concat({x, g.fill(sa, value, t, no_loc)}, axis, no_loc);
  if (after == 0) return concat({g.fill(sb, value, t, no_loc), x}, axis, no_loc);
  return concat({g.fill(sb, value, t, no_loc), x, g.fill(sa, value, t, no_loc)}, axis, no_loc);
}

// How many entries along an axis every() reads for `count` outputs at stride `s`: with s > 1 it
// reads whole groups of s (then keeps the first of each), so the input may need a tail of
// padding that no output uses.
constexpr std::int64_t span(std::int64_t count, std::int64_t s) { return s == 1 || count == 1 ? count : count * s; }

// Entries offset, offset + s, ..., offset + (count - 1)·s of `axis`. For s > 1: slice
// [offset, offset + count·s), view it as [count, s] and keep column 0 (a slice of a reshape).
constexpr tensor every(tensor x, int axis, std::int64_t offset, std::int64_t count, std::int64_t s) {
  if (!x.valid()) return x;
  if (s == 1 || count == 1) return slice(x, axis, offset, offset + count, no_loc);
  const tensor run = slice(x, axis, offset, offset + count * s, no_loc);
  const shape rs = run.valid() ? run.shape() : shape{};
  shape split;
  for (int d = 0; d < rs.rank; ++d) {
    if (d == axis) {
      split.dim[split.rank++] = count;
      split.dim[split.rank++] = s;
    } else {
      split.dim[split.rank++] = rs.dim[d];
    }
  }
  shape merged = rs;
  merged.dim[axis] = count;
  return reshape(slice(reshape(run, split, no_loc), axis + 1, 0, 1, no_loc), merged, no_loc);
}

// The window extent along each axis, from the node's geometry.
constexpr axis_window rows_of(const window_geometry& w) { return {w.ho, w.top, w.bottom}; }
constexpr axis_window columns_of(const window_geometry& w) { return {w.wo, w.left, w.right}; }

// The p·p windows of x [?,H,W,C] (p = geometry's kernel) as tensors [?,Ho,Wo,C], in row-major
// (i, j) order: window (i, j) holds x_padded[n, i + s·p, j + s·q, c] at [n, p, q, c]. The slicing
// works on the free view [?,H,W·C], where a window's columns are one contiguous run per row
// (stride 1): the copies move Wo·C values at a time rather than C.
constexpr std::vector<tensor> windows(tensor x, const window_geometry& geo, double pad_value) {
  std::vector<tensor> parts;
  const shape xs = x.shape();
  const std::int64_t n = xs.dim[0], c = xs.dim[3], kh = geo.kh, kw = geo.kw, s = geo.stride;
  const axis_window h = rows_of(geo), w = columns_of(geo);
  const std::int64_t ph = xs.dim[1] + h.before + h.after, pw = xs.dim[2] + w.before + w.after;
  const std::int64_t tail_h = kh - 1 + span(h.out, s) - ph, tail_w = kw - 1 + span(w.out, s) - pw;
  tensor xp = reshape(x, shape{n, xs.dim[1], xs.dim[2] * c}, no_loc);
  xp = pad(xp, 1, h.before, h.after + (tail_h > 0 ? tail_h : 0), pad_value);
  xp = pad(xp, 2, w.before * c, (w.after + (tail_w > 0 ? tail_w : 0)) * c, pad_value);
  const shape out{n, h.out, w.out, c};
  for (std::int64_t i = 0; i < kh; ++i) {
    const tensor rows = every(xp, 1, i, h.out, s);
    for (std::int64_t j = 0; j < kw; ++j) {
      if (s == 1 || w.out == 1) {
        parts.push_back(reshape(slice(rows, 2, j * c, (j + w.out) * c, no_loc), out, no_loc));
      } else {  // every s-th group of c columns: view the run as [.., Wo, s·c] and keep the first c
        const tensor run = slice(rows, 2, j * c, (j + w.out * s) * c, no_loc);
        parts.push_back(slice(reshape(run, shape{n, h.out, w.out, s * c}, no_loc), 3, 0, c, no_loc));
      }
    }
  }
  return parts;
}

// x [?,H,W,C] (or [1,H,W,1] for the window counts) padded or cropped to [?,Ho·p,Wo·p,C] and
// reduced over each p×p tile.
constexpr tensor tile_reduce(tensor x, const window_geometry& geo, bool padded, op reduction) {
  const shape xs = x.shape();
  const std::int64_t p = geo.kh;
  const axis_window h = rows_of(geo), w = columns_of(geo);
  tensor t = x;
  if (!padded) {
    t = slice(t, 1, 0, h.out * p, no_loc);
    t = slice(t, 2, 0, w.out * p, no_loc);
  } else {
    t = pad(t, 1, h.before, h.after, 0.0);
    t = pad(t, 2, w.before, w.after, 0.0);
  }
  t = reshape(t, shape{xs.dim[0], h.out, p, w.out, p, xs.dim[3]}, no_loc);
  return detail::reduce(reduction, t, axes{2, 4}, false, no_loc);
}

constexpr std::string_view pool_name(bool max) { return max ? "max_pool2d" : "avg_pool2d"; }

// The geometry of a pool over x, or an error recorded in x's graph.
constexpr bool check_pool(bool max, tensor x, std::int64_t p, std::int64_t& s, padding pad, const loc_t& loc) {
  graph& g = *x.g;
  const std::string_view name = pool_name(max);
  const shape xs = x.shape();
  if (xs.rank != 4) return g.fail_with(name, loc, "expects x [batch,H,W,C], got ", x.type(), " ", xs), false;
  if (!is_floating(x.type())) return g.fail_with(name, loc, "expects f32 or f64, got ", x.type(), " ", xs), false;
  if (s == 0) s = p;
  if (p < 1 || s < 1) return g.fail_with(name, loc, "pool and stride must be >= 1, got pool ", p, " and stride ", s, " for x ", xs), false;
  if (pad == padding::valid && (xs.dim[1] < p || xs.dim[2] < p))
    return g.fail_with(name, loc, "the pool window ", p, "x", p, " is larger than the image of x ", xs, " with padding::valid"), false;
  return true;
}

}  // namespace pool_detail

// Keras MaxPooling2D / tf.nn.max_pool2d (NHWC): the max over each pool×pool window; stride 0
// means stride = pool. The gradient goes to the first maximum of each window in row-major order
// (TF's MaxPoolGrad), also when several entries tie.
constexpr tensor max_pool2d(tensor x, std::int64_t pool, std::int64_t stride = 0, padding pad = padding::valid,
                            std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (!pool_detail::check_pool(true, x, pool, stride, pad, loc)) return detail::invalid_of(x);
  const shape xs = x.shape();
  return detail::max_pool(x, detail::geometry(xs.dim[1], xs.dim[2], pool, pool, stride, pad));
}

// Keras AveragePooling2D / tf.nn.avg_pool2d (NHWC); with padding::same a window averages only
// the entries inside the image.
constexpr tensor avg_pool2d(tensor x, std::int64_t pool, std::int64_t stride = 0, padding pad = padding::valid,
                            std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (!pool_detail::check_pool(false, x, pool, stride, pad, loc)) return detail::invalid_of(x);
  const shape xs = x.shape();
  const window_geometry geo = detail::geometry(xs.dim[1], xs.dim[2], pool, pool, stride, pad);
  node n;
  n.kind = op::avg_pool2d;
  n.type = x.type();
  n.out = shape{xs.dim[0], geo.ho, geo.wo, xs.dim[3]};
  n.n_in = 1;
  n.in[0] = x.id;
  geo.store(n);
  return x.g->add(n, loc);
}

// Padded entries are not counted by an average (TF's semantics).
KILN_LOWER(avg_pool2d) {
  using namespace pool_detail;
  const tensor x{&g, n.in[0]};
  const shape xs = x.shape();
  const window_geometry geo = window_geometry::of(n);
  const std::int64_t p = geo.kh;
  const bool padded = geo.top + geo.bottom + geo.left + geo.right > 0;
  const tensor ones = padded ? g.fill(shape{1, xs.dim[1], xs.dim[2], 1}, 1, x.type(), no_loc) : tensor{};
  if (geo.stride == p) {
    if (!padded) return tile_reduce(x, geo, false, op::reduce_mean);
    return div(tile_reduce(x, geo, true, op::reduce_sum), tile_reduce(ones, geo, true, op::reduce_sum), no_loc);
  }
  const std::vector<tensor> win = windows(x, geo, 0.0);
  tensor acc = win[0];
  for (std::size_t i = 1; i < win.size(); ++i) acc = add(acc, win[i], no_loc);
  if (!padded) return div(acc, double(p * p), no_loc);
  const std::vector<tensor> counts = windows(ones, geo, 0.0);
  tensor count = counts[0];
  for (std::size_t i = 1; i < counts.size(); ++i) count = add(count, counts[i], no_loc);
  return div(acc, count, no_loc);
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
