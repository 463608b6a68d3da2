// 2-D convolution (NHWC) as im2col (ops/window.hpp: one gather kernel, whose adjoint col2im is
// its gradient) followed by one matmul with the shared weights [KH·KW·C, F], so the bias and
// activation of a conv layer run in the matmul's epilogue and the weight gradient is one GEMM
// over every output position of the batch. The strided-window helpers below remain for the
// average pooling of nn/pool.hpp.
#pragma once
#include <cstdint>
#include <source_location>
#include <vector>
#include "../ops/elementwise.hpp"
#include "../ops/layout.hpp"
#include "../ops/matmul.hpp"
#include "../ops/window.hpp"

namespace kiln {

namespace spatial_detail {

using detail::loc_t;
using detail::no_loc;

struct axis_window {
  std::int64_t out = 0, before = 0, after = 0;
};

constexpr axis_window window(std::int64_t n, std::int64_t k, std::int64_t s, padding p) {
  axis_window w;
  if (p == padding::valid) {
    w.out = n >= k ? (n - k) / s + 1 : 0;
    return w;
  }
  w.out = (n + s - 1) / s;
  const std::int64_t total = (w.out - 1) * s + k - n;
  if (total > 0) {
    w.before = total / 2;
    w.after = total - w.before;
  }
  return w;
}

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

constexpr tensor concat_n(const tensor* p, std::size_t n, int axis) {
  switch (n) {
    case 1: return p[0];
    case 2: return concat({p[0], p[1]}, axis, no_loc);
    case 3: return concat({p[0], p[1], p[2]}, axis, no_loc);
    case 4: return concat({p[0], p[1], p[2], p[3]}, axis, no_loc);
    case 5: return concat({p[0], p[1], p[2], p[3], p[4]}, axis, no_loc);
    case 6: return concat({p[0], p[1], p[2], p[3], p[4], p[5]}, axis, no_loc);
    case 7: return concat({p[0], p[1], p[2], p[3], p[4], p[5], p[6]}, axis, no_loc);
    default: return concat({p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]}, axis, no_loc);
  }
}

// concat of any number of parts, in order (concat itself takes at most max_inputs).
constexpr tensor concat_all(std::vector<tensor> parts, int axis) {
  while (parts.size() > 1) {
    std::vector<tensor> next;
    for (std::size_t i = 0; i < parts.size(); i += std::size_t(max_inputs))
      next.push_back(concat_n(parts.data() + i, parts.size() - i < std::size_t(max_inputs) ? parts.size() - i : std::size_t(max_inputs), axis));
    parts = next;
  }
  return parts.empty() ? tensor{} : parts[0];
}

// The kh·kw windows of x [?,H,W,C] as tensors [?,Ho,Wo,C], in row-major (i, j) order: window
// (i, j) holds x_padded[n, i + s·p, j + s·q, c] at [n, p, q, c]. The slicing works on the free
// view [?,H,W·C], where a window's columns are one contiguous run per row (stride 1): the copies
// move Wo·C values at a time rather than C.
struct window_set {
  std::vector<tensor> parts;
  axis_window h, w;
};
constexpr window_set windows(tensor x, std::int64_t kh, std::int64_t kw, std::int64_t s, padding p, double pad_value) {
  window_set r;
  const shape xs = x.shape();
  const std::int64_t n = xs.dim[0], c = xs.dim[3];
  r.h = window(xs.dim[1], kh, s, p);
  r.w = window(xs.dim[2], kw, s, p);
  const std::int64_t ph = xs.dim[1] + r.h.before + r.h.after, pw = xs.dim[2] + r.w.before + r.w.after;
  const std::int64_t tail_h = kh - 1 + span(r.h.out, s) - ph, tail_w = kw - 1 + span(r.w.out, s) - pw;
  tensor xp = reshape(x, shape{n, xs.dim[1], xs.dim[2] * c}, no_loc);
  xp = pad(xp, 1, r.h.before, r.h.after + (tail_h > 0 ? tail_h : 0), pad_value);
  xp = pad(xp, 2, r.w.before * c, (r.w.after + (tail_w > 0 ? tail_w : 0)) * c, pad_value);
  const shape out{n, r.h.out, r.w.out, c};
  for (std::int64_t i = 0; i < kh; ++i) {
    const tensor rows = every(xp, 1, i, r.h.out, s);
    for (std::int64_t j = 0; j < kw; ++j) {
      if (s == 1 || r.w.out == 1) {
        r.parts.push_back(reshape(slice(rows, 2, j * c, (j + r.w.out) * c, no_loc), out, no_loc));
      } else {  // every s-th group of c columns: view the run as [.., Wo, s·c] and keep the first c
        const tensor run = slice(rows, 2, j * c, (j + r.w.out * s) * c, no_loc);
        r.parts.push_back(slice(reshape(run, shape{n, r.h.out, r.w.out, s * c}, no_loc), 3, 0, c, no_loc));
      }
    }
  }
  return r;
}

// The convolution before its final reshape: [?, Ho·Wo, F] (a bias and an activation applied here
// run in the matmul's epilogue), and the NHWC shape it stands for.
struct conv_rows {
  tensor rows;
  shape out;
};

constexpr conv_rows conv2d_rows(tensor x, tensor w, std::int64_t stride, padding pad, const loc_t& loc) {
  if (!x.valid()) return {detail::invalid_of(x), {}};
  if (!w.valid()) return {detail::invalid_of(w), {}};
  graph& g = *x.g;
  const shape xs = x.shape(), ws = w.shape();
  auto fail = [&](auto... parts) { return conv_rows{g.fail_with("conv2d", loc, parts...), {}}; };
  if (xs.rank != 4 || ws.rank != 4 || ws.dynamic())
    return fail("expects x [batch,H,W,C] and w [KH,KW,C,F], got x ", xs, " and w ", ws);
  if (x.type() != w.type() || !is_floating(x.type()))
    return fail("x and w must share a floating dtype, got ", x.type(), " ", xs, " and ", w.type(), " ", ws);
  if (xs.dim[3] != ws.dim[2]) return fail("x ", xs, " has ", xs.dim[3], " channels but w ", ws, " expects ", ws.dim[2]);
  if (stride < 1) return fail("stride must be >= 1, got ", stride, " (x ", xs, ", w ", ws, ")");
  const std::int64_t kh = ws.dim[0], kw = ws.dim[1], c = ws.dim[2], f = ws.dim[3];
  if (pad == padding::valid && (xs.dim[1] < kh || xs.dim[2] < kw))
    return fail("the kernel of w ", ws, " is larger than the image of x ", xs, " with padding::valid");
  const window_geometry geo = detail::geometry(xs.dim[1], xs.dim[2], kh, kw, stride, pad);
  const shape out{xs.dim[0], geo.ho, geo.wo, f};
  const tensor w2 = reshape(w, shape{kh * kw * c, f}, no_loc);
  // A 1×1 kernel at stride 1 reads every pixel once: the image itself is the column matrix.
  const bool pointwise = kh == 1 && kw == 1 && stride == 1;
  const tensor cols = pointwise ? reshape(x, shape{xs.dim[0], geo.ho * geo.wo, c}, no_loc) : detail::im2col(x, geo);
  return {matmul(cols, w2, false, false, loc), out};
}

}  // namespace spatial_detail

// y[n, p, q, f] = sum_{i,j,c} x_padded[n, s·p + i, s·q + j, c] · w[i, j, c, f]  (tf.nn.conv2d, NHWC)
// x [batch,H,W,C], w [KH,KW,C,F] -> [batch,Ho,Wo,F]; any stride >= 1 (the same for both axes).
constexpr tensor conv2d(tensor x, tensor w, std::int64_t stride = 1, padding pad = padding::valid,
                        std::source_location loc = std::source_location::current()) {
  const auto r = spatial_detail::conv2d_rows(x, w, stride, pad, loc);
  if (!r.rows.valid()) return r.rows;
  return reshape(r.rows, r.out, loc);
}

// conv2d(x, w) + bias [F], with the bias added in the matmul's epilogue.
constexpr tensor conv2d(tensor x, tensor w, tensor bias, std::int64_t stride = 1, padding pad = padding::valid,
                        std::source_location loc = std::source_location::current()) {
  const auto r = spatial_detail::conv2d_rows(x, w, stride, pad, loc);
  if (!r.rows.valid()) return r.rows;
  if (!bias.valid()) return detail::invalid_of(bias);
  const shape bs = bias.shape();
  if (bs.rank != 1 || bs.dim[0] != r.out.dim[3] || bias.type() != x.type())
    return x.g->fail_with("conv2d", loc, "bias must be ", x.type(), " [", r.out.dim[3], "] for w ", w.shape(), ", got ", bias.type(), " ", bs);
  return reshape(add(r.rows, bias, loc), r.out, loc);
}

}  // namespace kiln
