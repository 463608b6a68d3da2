// The graphs of test_window.cu (run on both backends): conv2d and max_pool2d, i.e. the window ops
// of ops/window.hpp and the row-folded weight-gradient contraction, forward and backward. Kept
// apart from models.hpp so that only the window tests compile the nn headers.
//
// The tests feed values on a dyadic grid, so the forward convolutions are exact in f32 on both
// backends (products of two 1/64-multiples, short sums) and max pooling sees the very same ties:
// a window's first maximum must be the same entry on the GPU as on the CPU.
#pragma once
#include "graph/graph.hpp"
#include "graph/program.hpp"
#include "ops/conv.hpp"
#include "ops/pool.hpp"
#include "ops/elementwise.hpp"
#include "ops/gradients.hpp"
#include "ops/reduce.hpp"

namespace cuda_models {
using namespace kiln;

// ---- the five ops on fed inputs, one geometry each ----------------------------------------------

// The ops of one geometry over x [?,7,6,3] (and v, same shape): im2col(x), col2im(cols),
// max_pool(x), max_pool_grad(x, g), max_pool_select(x, v), with cols and g fed; the last two also
// with positive_only routing.
struct direct_names {
  const char* cols;
  const char* g;
  const char* outputs[7];
};
constexpr void window_ops_of(graph& gr, tensor x, tensor v, const window_geometry& w, const direct_names& names) {
  const std::int64_t c = x.shape().dim[3];
  tensor cols = gr.placeholder(names.cols, f32, {batch, w.ho * w.wo, w.kh * w.kw * c});
  tensor g = gr.placeholder(names.g, f32, {batch, w.ho, w.wo, c});
  gr.output(names.outputs[0], detail::im2col(x, w));
  gr.output(names.outputs[1], detail::col2im(cols, x.shape(), w));
  gr.output(names.outputs[2], detail::max_pool(x, w));
  gr.output(names.outputs[3], detail::max_pool_grad(x, g, w));
  gr.output(names.outputs[4], detail::max_pool_select(x, v, w));
  window_geometry positive = w;  // the routing of a relu -> max pool (window_geometry::positive_only)
  positive.positive_only = true;
  gr.output(names.outputs[5], detail::max_pool_grad(x, g, positive));
  gr.output(names.outputs[6], detail::max_pool_select(x, v, positive));
}

// Every op at five geometries of a 7x6 image: stride 1 (valid), padding on one side only, stride
// larger than the window (gaps, a window hanging over the end), a 5x5 window over a 7x6 image
// (every window clipped), a non-square window with stride 2 (valid, cropping).
inline constexpr auto window_direct = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 7, 6, 3});
  tensor v = g.placeholder("v", f32, {batch, 7, 6, 3});
  window_ops_of(g, x, v, detail::geometry(7, 6, 3, 3, 1, padding::valid),
                {"cols_a", "g_a", {"im2col_a", "col2im_a", "pool_a", "pool_grad_a", "pool_select_a", "pool_grad_pos_a", "pool_select_pos_a"}});
  window_ops_of(g, x, v, detail::geometry(7, 6, 3, 2, 2, padding::same),
                {"cols_b", "g_b", {"im2col_b", "col2im_b", "pool_b", "pool_grad_b", "pool_select_b", "pool_grad_pos_b", "pool_select_pos_b"}});
  window_ops_of(g, x, v, detail::geometry(7, 6, 2, 2, 3, padding::same),
                {"cols_c", "g_c", {"im2col_c", "col2im_c", "pool_c", "pool_grad_c", "pool_select_c", "pool_grad_pos_c", "pool_select_pos_c"}});
  window_ops_of(g, x, v, detail::geometry(7, 6, 5, 5, 1, padding::same),
                {"cols_d", "g_d", {"im2col_d", "col2im_d", "pool_d", "pool_grad_d", "pool_select_d", "pool_grad_pos_d", "pool_select_pos_d"}});
  window_ops_of(g, x, v, detail::geometry(7, 6, 4, 3, 2, padding::valid),
                {"cols_e", "g_e", {"im2col_e", "col2im_e", "pool_e", "pool_grad_e", "pool_select_e", "pool_grad_pos_e", "pool_select_pos_e"}});
  return g;
};

// ---- conv2d and max_pool2d, forward and backward ---------------------------------------------------

// x [?,7,6,3] through six convolutions; every one gets a fed upstream u_* and outputs its value,
// dx (col2im) and dw (the folded contraction).
inline constexpr auto conv_windows = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 7, 6, 3});
  tensor w_valid = g.placeholder("w_valid", f32, {3, 2, 3, 4});  // valid, stride 1 -> [?,5,5,4]
  tensor w_same = g.placeholder("w_same", f32, {3, 3, 3, 2});    // same, stride 1, bias -> [?,7,6,2]
  tensor b_same = g.placeholder("b_same", f32, {2});
  tensor w_s2 = g.placeholder("w_s2", f32, {3, 3, 3, 5});        // same, stride 2 -> [?,4,3,5] (padding 1+1 / 0+1)
  tensor w_v2 = g.placeholder("w_v2", f32, {2, 3, 3, 3});        // valid, stride 2 -> [?,3,2,3] (drops a row)
  tensor w_1x1 = g.placeholder("w_1x1", f32, {1, 1, 3, 4});      // pointwise: no im2col, still folded
  tensor w_wide = g.placeholder("w_wide", f32, {3, 3, 3, 32});   // relu epilogue, a wider GEMM
  const tensor convs[] = {conv2d(x, w_valid),          conv2d(x, w_same, b_same, 1, padding::same), conv2d(x, w_s2, 2, padding::same),
                          conv2d(x, w_v2, 2),          conv2d(x, w_1x1),                            relu(conv2d(x, w_wide, 1, padding::same))};
  const tensor weights[] = {w_valid, w_same, w_s2, w_v2, w_1x1, w_wide};
  const char* names[] = {"valid", "same", "s2", "v2", "1x1", "wide"};
  const char* ups[] = {"u_valid", "u_same", "u_s2", "u_v2", "u_1x1", "u_wide"};
  const char* dxs[] = {"dx_valid", "dx_same", "dx_s2", "dx_v2", "dx_1x1", "dx_wide"};
  const char* dws[] = {"dw_valid", "dw_same", "dw_s2", "dw_v2", "dw_1x1", "dw_wide"};
  for (int k = 0; k < 6; ++k) {
    tensor u = g.placeholder(ups[k], f32, convs[k].shape());
    auto [gx, gw] = gradients(convs[k], {x, weights[k]}, u);
    g.output(names[k], convs[k]);
    g.output(dxs[k], gx);
    g.output(dws[k], gw);
  }
  g.output("db_same", gradient(convs[1], b_same, g.placeholder("u_bias", f32, convs[1].shape())));
  return g;
};

// x [?,7,6,3] through five max pools (valid and same, stride = pool and overlapping); each gets a
// fed upstream u_* (dx: max_pool_grad), and the gradient of <dx, v> in u_* is max_pool_select.
inline constexpr auto pool_windows = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 7, 6, 3});
  tensor v = g.placeholder("v", f32, {batch, 7, 6, 3});
  const tensor pools[] = {max_pool2d(x, 2),                       // valid, stride 2 -> [?,3,3,3] (crops)
                          max_pool2d(x, 3, 2),                    // valid, stride 2, overlapping -> [?,3,2,3]
                          max_pool2d(x, 3, 1, padding::same),     // same, stride 1 -> [?,7,6,3] (padding all round)
                          max_pool2d(x, 2, 0, padding::same),     // same, stride 2 -> [?,4,3,3] (pads the end)
                          max_pool2d(x, 3, 2, padding::same)};    // same, stride 2, overlapping -> [?,4,3,3]
  const char* names[] = {"p2", "p3s2", "p3same", "p2same", "p3s2same"};
  const char* ups[] = {"u_p2", "u_p3s2", "u_p3same", "u_p2same", "u_p3s2same"};
  const char* dxs[] = {"dx_p2", "dx_p3s2", "dx_p3same", "dx_p2same", "dx_p3s2same"};
  const char* sels[] = {"sel_p2", "sel_p3s2", "sel_p3same", "sel_p2same", "sel_p3s2same"};
  for (int k = 0; k < 5; ++k) {
    tensor u = g.placeholder(ups[k], f32, pools[k].shape());
    tensor gx = gradient(pools[k], x, u);
    g.output(names[k], pools[k]);
    g.output(dxs[k], gx);
    g.output(sels[k], gradient(reduce_sum(gx * v), u));
  }
  return g;
};

// Second order through the whole family (as tests/test_vision_gradients.cpp on the CPU): the
// gradient of z = <dy/dx, v> + <dy/dw, u> runs im2col, col2im, max_pool_grad, max_pool_select and
// the folded contraction. relu rather than tanh keeps the forward exact (see above).
inline constexpr auto window_second_order = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 6, 5, 2}), w = g.placeholder("w", f32, {3, 2, 2, 3});
  tensor v = g.placeholder("v", f32, {batch, 6, 5, 2}), u = g.placeholder("u", f32, {3, 2, 2, 3});
  tensor h = relu(conv2d(x, w, 1, padding::same));                               // [?,6,5,3]
  tensor y = reduce_sum(square(max_pool2d(h, 2, 0, padding::same)) * 0.5);       // [?,3,3,3]
  auto [dx, dw] = gradients(y, {x, w});
  tensor z = reduce_sum(dx * v) + reduce_sum(dw * u);
  auto [ddx, ddw] = gradients(z, {x, w});
  g.output("y", y);
  g.output("dx", dx);
  g.output("dw", dw);
  g.output("ddx", ddx);
  g.output("ddw", ddw);
  return g;
};

}  // namespace cuda_models

#define KILN_CUDA_WINDOW_MODELS(X) X(window_direct) X(conv_windows) X(pool_windows) X(window_second_order)
