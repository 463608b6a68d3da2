// Kernels of the window ops (ops/window.hpp) over NHWC images, one thread per output element.
// The adjoints that scatter on the CPU (col2im, max_pool_grad) gather here: each input element
// visits the few windows that read it, in the order the CPU kernel adds them (window rows, then
// columns, ascending), so there are no atomics and the sums are deterministic and match the CPU
// bit for bit. max_pool_grad and max_pool_select recompute each window's argmax instead of keeping
// it from the forward pass: the ops carry no index tensor, and a window is a handful of reads.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>
#include "../../ops/window.hpp"
#include "fused.cuh"

namespace kiln::cuda_detail {

// One window group's geometry at a given batch size; the image side is [images,H,W,C], the
// pooled side [images,Ho,Wo,C] and the column side [images,Ho·Wo,KH·KW·C].
struct window_desc {
  std::int64_t images = 0, H = 0, W = 0, C = 0;
  std::int64_t KH = 1, KW = 1, S = 1, top = 0, left = 0, Ho = 0, Wo = 0;
  bool positive_only = false;  // window_geometry::positive_only: route only through maxima > 0
};

// A half-open range [lo, hi) of window rows (or columns, or outputs).
struct window_span {
  std::int64_t lo, hi;
};
// The rows i of a window whose first row is image row `origin` that land inside the image.
__host__ __device__ inline window_span inside(std::int64_t origin, std::int64_t k, std::int64_t extent) {
  return {origin < 0 ? -origin : 0, k < extent - origin ? k : extent - origin};
}

// The outputs p whose window covers image row y: 0 <= y + before - p·S < k, 0 <= p < out.
__host__ __device__ inline window_span covering(std::int64_t y, std::int64_t before, std::int64_t k, std::int64_t s, std::int64_t out) {
  const std::int64_t a = y + before;  // >= 0: the padding before is never negative
  const std::int64_t first = a - k + 1 <= 0 ? 0 : (a - k + 1 + s - 1) / s;
  const std::int64_t last = a / s < out - 1 ? a / s : out - 1;
  return {first, last + 1};
}

// The first maximum of window (p, q), channel c, of one image: its offset (y·W + x)·C + c, or -1
// for a window with no entry inside the image; the maximum goes to `best`. Exactly the CPU rule:
// the first entry inside the image is the initial candidate, then only strictly greater values
// replace it (so the first of equal maxima wins, and NaNs never do unless first).
template <class T>
__host__ __device__ inline std::int64_t window_argmax(const T* __restrict__ x, const window_desc& d, std::int64_t p, std::int64_t q, std::int64_t c, T& best) {
  const std::int64_t y0 = p * d.S - d.top, x0 = q * d.S - d.left;
  const window_span i = inside(y0, d.KH, d.H), j = inside(x0, d.KW, d.W);
  if (i.hi <= i.lo || j.hi <= j.lo) {
    best = -std::numeric_limits<T>::infinity();
    return -1;
  }
  std::int64_t at = ((y0 + i.lo) * d.W + x0 + j.lo) * d.C + c;
  best = x[at];
  for (std::int64_t ii = i.lo; ii < i.hi; ++ii)
    for (std::int64_t jj = j.lo; jj < j.hi; ++jj) {
      const std::int64_t off = ((y0 + ii) * d.W + x0 + jj) * d.C + c;
      const T v = x[off];
      if (v > best) {
        best = v;
        at = off;
      }
    }
  return at;
}

// The value of output element t of each op, on the device (the kernel below) or on the host
// (tests/cuda/test_expression_host.cu emulates the kernels with them, without a GPU).

// cols[n, p·Wo+q, (i·KW+j)·C+c] = x[n, S·p+i-top, S·q+j-left, c], 0 outside the image.
template <class T> __host__ __device__ inline T im2col_at(std::int64_t t, const T* __restrict__ x, const window_desc& d) {
  const std::int64_t window = d.KH * d.KW * d.C, rows = d.Ho * d.Wo;
  const std::int64_t e = t % window, r = t / window;
  const std::int64_t pq = r % rows, n = r / rows;
  const std::int64_t c = e % d.C, ij = e / d.C;
  const std::int64_t y = (pq / d.Wo) * d.S + ij / d.KW - d.top, xx = (pq % d.Wo) * d.S + ij % d.KW - d.left;
  return y >= 0 && y < d.H && xx >= 0 && xx < d.W ? x[((n * d.H + y) * d.W + xx) * d.C + c] : T(0);
}

// x[n, y, x, c] = the sum of the cols entries that read it (the adjoint of im2col).
template <class T> __host__ __device__ inline T col2im_at(std::int64_t t, const T* __restrict__ cols, const window_desc& d) {
  const std::int64_t window = d.KH * d.KW * d.C;
  const std::int64_t c = t % d.C, r = t / d.C;
  const std::int64_t xx = r % d.W, r2 = r / d.W;
  const std::int64_t y = r2 % d.H, n = r2 / d.H;
  const window_span ps = covering(y, d.top, d.KH, d.S, d.Ho), qs = covering(xx, d.left, d.KW, d.S, d.Wo);
  const T* img = cols + n * d.Ho * d.Wo * window;
  T sum = T(0);
  for (std::int64_t p = ps.lo; p < ps.hi; ++p) {
    const std::int64_t i = y + d.top - p * d.S;
    for (std::int64_t q = qs.lo; q < qs.hi; ++q) {
      const std::int64_t j = xx + d.left - q * d.S;
      sum += img[(p * d.Wo + q) * window + (i * d.KW + j) * d.C + c];
    }
  }
  return sum;
}

// y[n, p, q, c] = the maximum of window (p, q) of channel c.
template <class T> __host__ __device__ inline T max_pool_at(std::int64_t t, const T* __restrict__ x, const window_desc& d) {
  const std::int64_t c = t % d.C, r = t / d.C;
  const std::int64_t q = r % d.Wo, r2 = r / d.Wo;
  const std::int64_t p = r2 % d.Ho, n = r2 / d.Ho;
  T best;
  (void)window_argmax(x + n * d.H * d.W * d.C, d, p, q, c, best);
  return best;
}

// dx[n, y, x, c] = the sum of g[n, p, q, c] over the windows (p, q) covering (y, x) whose first
// maximum (channel c) is that very entry.
template <class T>
__host__ __device__ inline T max_pool_grad_at(std::int64_t t, const T* __restrict__ x, const T* __restrict__ g, const window_desc& d) {
  const std::int64_t image = d.H * d.W * d.C;
  const std::int64_t within = t % image, n = t / image;
  const std::int64_t c = within % d.C, r = within / d.C;
  const std::int64_t xx = r % d.W, y = r / d.W;
  const window_span ps = covering(y, d.top, d.KH, d.S, d.Ho), qs = covering(xx, d.left, d.KW, d.S, d.Wo);
  const T* img = x + n * image;
  const T* up = g + n * d.Ho * d.Wo * d.C;
  T sum = T(0);
  for (std::int64_t p = ps.lo; p < ps.hi; ++p)
    for (std::int64_t q = qs.lo; q < qs.hi; ++q) {
      T best;
      if (window_argmax(img, d, p, q, c, best) == within && (!d.positive_only || best > T(0))) sum += up[(p * d.Wo + q) * d.C + c];
    }
  return sum;
}

// out[n, p, q, c] = g[n, first maximum of window (p, q), c] (0 for a window outside the image).
template <class T>
__host__ __device__ inline T max_pool_select_at(std::int64_t t, const T* __restrict__ x, const T* __restrict__ g, const window_desc& d) {
  const std::int64_t image = d.H * d.W * d.C;
  const std::int64_t c = t % d.C, r = t / d.C;
  const std::int64_t q = r % d.Wo, r2 = r / d.Wo;
  const std::int64_t p = r2 % d.Ho, n = r2 / d.Ho;
  T best;
  const std::int64_t at = window_argmax(x + n * image, d, p, q, c, best);
  return at >= 0 && (!d.positive_only || best > T(0)) ? g[n * image + at] : T(0);
}

template <op Kind, class T>
__host__ __device__ inline T window_at(std::int64_t t, const T* __restrict__ in0, const T* __restrict__ in1, const window_desc& d) {
  if constexpr (Kind == op::im2col) return im2col_at(t, in0, d);
  else if constexpr (Kind == op::col2im) return col2im_at(t, in0, d);
  else if constexpr (Kind == op::max_pool) return max_pool_at(t, in0, d);
  else if constexpr (Kind == op::max_pool_grad) return max_pool_grad_at(t, in0, in1, d);
  else return max_pool_select_at(t, in0, in1, d);
}

// One thread per output element (grid-stride); in1 is the second input of the selects, else null.
template <op Kind, class T>
__global__ void __launch_bounds__(block_threads)
    window_kernel(T* __restrict__ out, const T* __restrict__ in0, const T* __restrict__ in1, const window_desc d, const std::int64_t total) {
  const std::int64_t step = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) out[t] = window_at<Kind, T>(t, in0, in1, d);
}

template <class P, int G> struct window_plan {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr node n = P::nodes[std::size_t(root)];
  static constexpr window_geometry w = window_geometry::of(n);
  // the image side: the input of im2col, max_pool and the selects, the output of col2im
  static constexpr shape image = n.kind == op::col2im ? n.out : P::nodes[std::size_t(n.in[0])].out;
  using T = ctype<n.type>;
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "window ops are defined for f32 and f64");
  static_assert(image.rank == 4, "window ops work on [batch,H,W,C] images");
  static_assert(n.kind == op::im2col || n.kind == op::col2im || n.kind == op::max_pool || n.kind == op::max_pool_grad ||
                n.kind == op::max_pool_select);
  static constexpr bool two_inputs = n.kind == op::max_pool_grad || n.kind == op::max_pool_select;

  static window_desc desc(std::int64_t batch_size) {
    window_desc d;
    d.images = n.out.extent(0, batch_size);
    d.H = image.dim[1];
    d.W = image.dim[2];
    d.C = image.dim[3];
    d.KH = w.kh;
    d.KW = w.kw;
    d.S = w.stride;
    d.positive_only = w.positive_only;
    d.top = w.top;
    d.left = w.left;
    d.Ho = w.ho;
    d.Wo = w.wo;
    return d;
  }

  static void launch(const launch_context& ctx) {
    const std::int64_t total = n.out.elements(ctx.batch);
    if (total <= 0) return;
    const T* in1 = nullptr;
    if constexpr (two_inputs) in1 = static_cast<const T*>(ctx.values[n.in[1]]);
    window_kernel<n.kind, T><<<grid_for(total, ctx.max_blocks), block_threads, 0, ctx.stream>>>(
        static_cast<T*>(ctx.values[root]), static_cast<const T*>(ctx.values[n.in[0]]), in1, desc(ctx.batch), total);
    KILN_CUDA_LAUNCHED("window kernel launch");
  }
};

}  // namespace kiln::cuda_detail
