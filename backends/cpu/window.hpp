// Kernels of the window ops (ops/window.hpp) over NHWC images: every batch entry is independent,
// so the work splits over the batch; the C channels of a pixel are contiguous, so the inner loops
// copy, add or compare whole channel runs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include "../../ops/window.hpp"
#include "packet_math.hpp"
#include "parallel.hpp"

namespace kiln::cpu_detail {

template <class P, int G> struct window_group {
  static constexpr int root = P::plan.groups[G].root;
  static constexpr const node& n = P::nodes[root];
  static constexpr window_geometry w = window_geometry::of(n);
  // the image side: the input of im2col, max_pool and the selects, the output of col2im
  static constexpr const shape image = n.kind == op::col2im ? n.out : P::nodes[n.in[0]].out;
  static constexpr std::int64_t H = image.dim[1], W = image.dim[2], C = image.dim[3];
  static constexpr std::int64_t KH = w.kh, KW = w.kw, S = w.stride, Ho = w.ho, Wo = w.wo;
  static constexpr std::int64_t image_size = H * W * C, window_size = KH * KW * C, pooled_size = Ho * Wo * C;
  using T = ctype<n.type>;
  static_assert(image_size < (std::int64_t(1) << 31), "window ops: one image must hold fewer than 2^31 elements (int32 offsets)");

  // The first and one-past-last window rows i (or columns) that land inside the image for output
  // row p: padding is skipped rather than tested per element.
  static constexpr std::int64_t first_inside(std::int64_t origin) { return origin < 0 ? -origin : 0; }
  static constexpr std::int64_t end_inside(std::int64_t origin, std::int64_t k, std::int64_t extent) {
    return std::min(k, extent - origin);
  }

  // cols[p·Wo+q, (i·KW+j)·C+c] = x[S·p+i-top, S·q+j-left, c] for one image; 0 outside.
  static void im2col_image(const T* x, T* cols) {
    for (std::int64_t p = 0; p < Ho; ++p) {
      const std::int64_t y0 = p * S - w.top;
      for (std::int64_t q = 0; q < Wo; ++q) {
        const std::int64_t x0 = q * S - w.left;
        T* row = cols + (p * Wo + q) * window_size;
        const std::int64_t j0 = first_inside(x0), j1 = end_inside(x0, KW, W);
        for (std::int64_t i = 0; i < KH; ++i) {
          T* dst = row + i * KW * C;
          const std::int64_t y = y0 + i;
          if (y < 0 || y >= H || j1 <= j0) {
            std::fill(dst, dst + KW * C, T(0));
            continue;
          }
          if (j0 > 0) std::fill(dst, dst + j0 * C, T(0));
          std::memcpy(dst + j0 * C, x + (y * W + x0 + j0) * C, std::size_t((j1 - j0) * C) * sizeof(T));
          if (j1 < KW) std::fill(dst + j1 * C, dst + KW * C, T(0));
        }
      }
    }
  }

  // dst[e] += src[e] for e < n. The arrays never overlap (cols and the image are separate
  // buffers); __restrict and, where it can be, a static length let g++ -O2 vectorize the loop
  // without a runtime overlap check, which its cheap cost model refuses (measured: col2im of the
  // seed CNN's conv-2 gradient went from 442 to ... us per step).
  template <std::int64_t n> KILN_INLINE static void add_row(T* __restrict dst, const T* __restrict src) {
    for (std::int64_t e = 0; e < n; ++e) dst[e] += src[e];
  }
  KILN_INLINE static void add_row(T* __restrict dst, const T* __restrict src, std::int64_t n) {
    for (std::int64_t e = 0; e < n; ++e) dst[e] += src[e];
  }

  // The adjoint: x[...] = sum of the cols entries that read it, for one image.
  static void col2im_image(const T* cols, T* x) {
    std::fill(x, x + image_size, T(0));
    for (std::int64_t p = 0; p < Ho; ++p) {
      const std::int64_t y0 = p * S - w.top;
      const std::int64_t i0 = first_inside(y0), i1 = end_inside(y0, KH, H);
      for (std::int64_t q = 0; q < Wo; ++q) {
        const std::int64_t x0 = q * S - w.left;
        const std::int64_t j0 = first_inside(x0), j1 = end_inside(x0, KW, W);
        const T* row = cols + (p * Wo + q) * window_size;
        for (std::int64_t i = i0; i < i1; ++i) {
          T* dst = x + ((y0 + i) * W + x0) * C;
          const T* src = row + i * KW * C;
          if (j0 == 0 && j1 == KW) add_row<KW * C>(dst, src);  // the whole window row inside: a static length
          else add_row(dst + j0 * C, src + j0 * C, (j1 - j0) * C);
        }
      }
    }
  }

  // For each output pixel and channel: the offset (y·W + x)·C + c of the first maximum of its
  // window in row-major order, and the maximum, handed to f(out_index, offsets, maxima, count)
  // one run of channels at a time. Runs have a static width, so the compare-and-select over
  // them vectorizes.
  template <class F> static void argmax_image(const T* x, F&& f) {
    constexpr std::int64_t run = C <= 64 ? C : 64, full_runs = C / run, tail = C % run;
    for (std::int64_t p = 0; p < Ho; ++p) {
      const std::int64_t y0 = p * S - w.top;
      const std::int64_t i0 = first_inside(y0), i1 = end_inside(y0, KH, H);
      for (std::int64_t q = 0; q < Wo; ++q) {
        const std::int64_t x0 = q * S - w.left;
        const std::int64_t j0 = first_inside(x0), j1 = end_inside(x0, KW, W);
        const std::int64_t out = (p * Wo + q) * C;
        for (std::int64_t r = 0; r < full_runs; ++r) argmax_run<run>(x, y0, x0, i0, i1, j0, j1, r * run, out, f);
        if constexpr (tail > 0) argmax_run<tail>(x, y0, x0, i0, i1, j0, j1, full_runs * run, out, f);
      }
    }
  }

  template <std::int64_t CN, class F>
  KILN_INLINE static void argmax_run(const T* x, std::int64_t y0, std::int64_t x0, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                                     std::int64_t j1, std::int64_t c0, std::int64_t out, F& f) {
    T best[CN];
    std::int32_t at[CN];  // int32 like float lanes: the select below vectorizes
    // the window's first entry inside the image, then strictly greater entries: the first maximum
    // wins ties (and an all -inf window still has one)
    const std::int64_t first = i1 > i0 && j1 > j0 ? ((y0 + i0) * W + x0 + j0) * C + c0 : -1;
    for (std::int64_t c = 0; c < CN; ++c) {
      best[c] = first >= 0 ? x[first + c] : -std::numeric_limits<T>::infinity();
      at[c] = first >= 0 ? std::int32_t(first + c) : -1;
    }
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t j = j0; j < j1; ++j) {
        const std::int32_t off = std::int32_t(((y0 + i) * W + x0 + j) * C + c0);
        const T* v = x + off;
        for (std::int32_t c = 0; c < std::int32_t(CN); ++c) {
          const bool take = v[c] > best[c];
          best[c] = take ? v[c] : best[c];
          at[c] = take ? off + c : at[c];
        }
      }
    f(out + c0, at, best, CN);
  }

  // dx for one image: g of each window at its first maximum (with positive_only: only where that
  // maximum is > 0), 0 elsewhere. Windows that tile the image (stride == pool) write every entry
  // they cover exactly once, so only the uncovered border is cleared first; overlapping or
  // gapped windows clear the image and accumulate.
  static void max_pool_grad_image(const T* x, const T* g, T* dx) {
    constexpr bool tiles = S == KH && S == KW;
    auto routed = [](const T* best, std::int64_t c, T v) { return !w.positive_only || best[c] > T(0) ? v : T(0); };
    if constexpr (!tiles) {
      std::fill(dx, dx + image_size, T(0));
      argmax_image(x, [&](std::int64_t o, const std::int32_t* at, const T* best, std::int64_t cn) {
        for (std::int64_t c = 0; c < cn; ++c)
          if (at[c] >= 0) dx[at[c]] += routed(best, c, g[o + c]);
      });
    } else {
      // tiles start at -top <= 0, so they cover rows [0, row1) and columns [0, col1)
      constexpr std::int64_t row1 = std::min(H, Ho * S - w.top), col1 = std::min(W, Wo * S - w.left);
      for (std::int64_t y = row1; y < H; ++y) std::fill(dx + y * W * C, dx + (y + 1) * W * C, T(0));
      if constexpr (col1 < W)
        for (std::int64_t y = 0; y < row1; ++y) std::fill(dx + (y * W + col1) * C, dx + (y + 1) * W * C, T(0));
      constexpr std::int64_t run = C <= 64 ? C : 64, full_runs = C / run, tail = C % run;
      for (std::int64_t p = 0; p < Ho; ++p) {
        const std::int64_t y0 = p * S - w.top, i0 = first_inside(y0), i1 = end_inside(y0, KH, H);
        for (std::int64_t q = 0; q < Wo; ++q) {
          const std::int64_t x0 = q * S - w.left, j0 = first_inside(x0), j1 = end_inside(x0, KW, W);
          const T* gw = g + (p * Wo + q) * C;
          for (std::int64_t r = 0; r < full_runs; ++r) route_window<run>(x, gw + r * run, dx, y0, x0, i0, i1, j0, j1, r * run);
          if constexpr (tail > 0) route_window<tail>(x, gw + full_runs * run, dx, y0, x0, i0, i1, j0, j1, full_runs * run);
        }
      }
    }
  }

  // One window's run of CN channels: the index e = i·KW + j of each channel's first maximum, then
  // every in-image entry written once (g at the maximum, 0 elsewhere). Window-local indices keep
  // the selects in int32 lanes beside the float ones, so both loops vectorize.
  template <std::int64_t CN>
  KILN_INLINE static void route_window(const T* __restrict x, const T* __restrict g, T* __restrict dx, std::int64_t y0, std::int64_t x0,
                                       std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1, std::int64_t c0) {
    if (i1 <= i0 || j1 <= j0) return;
    if constexpr (std::is_same_v<T, float> && CN % packet_width == 0) {
      route_window_packets<CN>(x, g, dx, y0, x0, i0, i1, j0, j1, c0);
      return;
    }
    T best[CN];
    std::int32_t arg[CN];
    const T* first = x + ((y0 + i0) * W + x0 + j0) * C + c0;
    for (std::int64_t c = 0; c < CN; ++c) {
      best[c] = first[c];
      arg[c] = std::int32_t(i0 * KW + j0);
    }
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t j = j0; j < j1; ++j) {
        const T* v = x + ((y0 + i) * W + x0 + j) * C + c0;
        const std::int32_t e = std::int32_t(i * KW + j);
        for (std::int64_t c = 0; c < CN; ++c) {
          const bool take = v[c] > best[c];
          best[c] = take ? v[c] : best[c];
          arg[c] = take ? e : arg[c];
        }
      }
    T routed[CN];
    for (std::int64_t c = 0; c < CN; ++c) routed[c] = !w.positive_only || best[c] > T(0) ? g[c] : T(0);
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t j = j0; j < j1; ++j) {
        T* d = dx + ((y0 + i) * W + x0 + j) * C + c0;
        const std::int32_t e = std::int32_t(i * KW + j);
        for (std::int64_t c = 0; c < CN; ++c) d[c] = arg[c] == e ? routed[c] : T(0);
      }
  }

  // route_window for f32 runs of whole packets, in Eigen's packets: the window index of each
  // lane's first maximum is kept as a float (exact below 2^24) beside the maximum, so the
  // compare-and-select and the routing stay in vector registers. (The scalar loops above vectorize
  // only partly with g++ -O2 and cost ~70-100 ns per window of 32 channels, about four times this.)
  template <std::int64_t CN>
  KILN_INLINE static void route_window_packets(const float* __restrict x, const float* __restrict g, float* __restrict dx, std::int64_t y0,
                                               std::int64_t x0, std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1,
                                               std::int64_t c0) {
    constexpr int np = int(CN / packet_width);
    packet_f32 best[np], arg[np];
    const float* first = x + ((y0 + i0) * W + x0 + j0) * C + c0;
    const packet_f32 first_index = ei::pset1<packet_f32>(float(i0 * KW + j0));
    static_for<np>([&](auto q) {
      best[q] = ei::ploadu<packet_f32>(first + q * packet_width);
      arg[q] = first_index;
    });
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t j = j0; j < j1; ++j) {
        const float* v = x + ((y0 + i) * W + x0 + j) * C + c0;
        const packet_f32 e = ei::pset1<packet_f32>(float(i * KW + j));
        static_for<np>([&](auto q) {
          const packet_f32 vq = ei::ploadu<packet_f32>(v + q * packet_width);
          const packet_f32 take = ei::pcmp_lt(best[q], vq);  // v > best: false for NaN, as the scalar loop
          best[q] = ei::pselect(take, vq, best[q]);
          arg[q] = ei::pselect(take, e, arg[q]);
        });
      }
    packet_f32 routed[np];
    static_for<np>([&](auto q) {
      const packet_f32 gq = ei::ploadu<packet_f32>(g + q * packet_width);
      if constexpr (w.positive_only) routed[q] = ei::pand(ei::pcmp_lt(ei::pzero(gq), best[q]), gq);
      else routed[q] = gq;
    });
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t j = j0; j < j1; ++j) {
        float* d = dx + ((y0 + i) * W + x0 + j) * C + c0;
        const packet_f32 e = ei::pset1<packet_f32>(float(i * KW + j));
        static_for<np>([&](auto q) { ei::pstoreu(d + q * packet_width, ei::pand(ei::pcmp_eq(arg[q], e), routed[q])); });
      }
  }

  // Images [b0, b1) of the batch (the whole op is a loop over images; batch_segments.hpp also
  // runs a few images at a time through a chain of ops).
  static void run_samples(const context& ctx, std::int64_t b0, std::int64_t b1) {
    T* out = static_cast<T*>(ctx.values[root]);
    const T* in0 = static_cast<const T*>(ctx.values[n.in[0]]);
    for (std::int64_t b = b0; b < b1; ++b) {
      if constexpr (n.kind == op::im2col) {
        im2col_image(in0 + b * image_size, out + b * Ho * Wo * window_size);
      } else if constexpr (n.kind == op::col2im) {
        col2im_image(in0 + b * Ho * Wo * window_size, out + b * image_size);
      } else if constexpr (n.kind == op::max_pool) {
        T* y = out + b * pooled_size;
        argmax_image(in0 + b * image_size, [&](std::int64_t o, const std::int32_t*, const T* best, std::int64_t cn) {
          std::copy(best, best + cn, y + o);
        });
      } else if constexpr (n.kind == op::max_pool_grad) {  // g [?,Ho,Wo,C] -> dx [?,H,W,C]
        max_pool_grad_image(in0 + b * image_size, static_cast<const T*>(ctx.values[n.in[1]]) + b * pooled_size, out + b * image_size);
      } else {  // max_pool_select: g [?,H,W,C] -> [?,Ho,Wo,C]
        const T* g = static_cast<const T*>(ctx.values[n.in[1]]) + b * image_size;
        T* y = out + b * pooled_size;
        argmax_image(in0 + b * image_size, [&](std::int64_t o, const std::int32_t* at, const T* best, std::int64_t cn) {
          for (std::int64_t c = 0; c < cn; ++c) y[o + c] = at[c] >= 0 && (!w.positive_only || best[c] > T(0)) ? g[at[c]] : T(0);
        });
      }
    }
  }

  // cost per image: the elements it touches
  static constexpr std::int64_t cost_per_sample =
      n.kind == op::im2col || n.kind == op::col2im ? Ho * Wo * window_size : Ho * Wo * KH * KW * C + image_size;

  static void run(const context& ctx) {
    parallel_range(n.out.extent(0, ctx.batch), cost_per_sample, [&](std::int64_t b0, std::int64_t b1) { run_samples(ctx, b0, b1); });
  }
};

}  // namespace kiln::cpu_detail
