// The test models of the gradient checks, shared by the CPU tests (tests/test_gradients.cpp,
// tests/test_gradients_nn.cpp) and the CUDA ones (tests/cuda/*gradients*), so that both backends
// are checked on the very same graphs. Templates on the dtype: the checks run them in f64.
//
// A model outputs its (summed) objective as "y" and, for every input x it differentiates, the
// analytic gradient as "d_x" (the convention of tests/test_gradients_check.hpp).
//
// The models need only the graph and op headers, so nvcc compiles them too; the inputs at the end
// are built with the checker, which pulls in the CPU backend, and are therefore host-compiler only.
#pragma once
#include <cstdint>
#include "graph/graph.hpp"
#include "ops/conv.hpp"
#include "ops/pool.hpp"
#include "ops/elementwise.hpp"
#include "ops/gradients.hpp"
#include "ops/indexing.hpp"
#include "ops/layout.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"

namespace gradient_models {
using namespace kiln;

// A non-uniform upstream: y sums t weighted along its last dim (2, 3 or 4 wide).
constexpr tensor weighted(graph& g, tensor t) {
  const dtype T = t.type();
  const std::int64_t n = t.shape().dim[t.rank() - 1];
  tensor w = n == 4 ? g.constant({0.5, -1.25, 2.0, 0.75}, T, {4})
             : n == 3 ? g.constant({0.5, -1.25, 2.0}, T, {3})
                      : g.constant({0.5, -1.25}, T, {2});
  return reduce_sum(t * w);
}

// ---- unary ops: one input per op, y = sum_op weighted(op(x_op)) -----------------------------------

template <dtype T> struct unary_model {
  constexpr graph operator()() const {
    graph g;
    const char* names[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "square", "tanh", "sigmoid", "relu", "softplus", "sign", "chain"};
    const char* grads[] = {"d_neg", "d_abs", "d_exp", "d_log", "d_sqrt", "d_rsqrt", "d_square", "d_tanh", "d_sigmoid",
                           "d_relu", "d_softplus", "d_sign", "d_chain"};
    tensor xs[13];
    tensor y = g.scalar(0, T);
    for (int i = 0; i < 13; ++i) {
      tensor x = xs[i] = g.placeholder(names[i], T, {batch, 3});
      tensor r;
      switch (i) {
        case 0: r = -x; break;
        case 1: r = abs(x); break;
        case 2: r = exp(x); break;
        case 3: r = log(x); break;
        case 4: r = sqrt(x); break;
        case 5: r = rsqrt(x); break;
        case 6: r = square(x); break;
        case 7: r = tanh(x); break;
        case 8: r = sigmoid(x); break;
        case 9: r = relu(x); break;
        case 10: r = softplus(x); break;
        case 11: r = sign(x) + x; break;
        default: r = tanh(sigmoid(exp(x) * x) + log(square(x) + 1.0)); break;  // a composition, x used twice
      }
      y = y + weighted(g, r);
    }
    g.output("y", y);
    auto d = gradients(y, xs);
    for (int i = 0; i < 13; ++i) g.output(grads[i], d[std::size_t(i)]);
    return g;
  }
};

// ---- binary ops with broadcasting ---------------------------------------------------------------

template <dtype T> struct binary_model {
  constexpr graph operator()() const {
    graph g;
    tensor add_a = g.placeholder("add_a", T, {batch, 3}), add_b = g.placeholder("add_b", T, {3});
    tensor sub_a = g.placeholder("sub_a", T, {3, 1}), sub_b = g.placeholder("sub_b", T, {1, 4});
    tensor mul_a = g.placeholder("mul_a", T, {3, 1}), mul_b = g.placeholder("mul_b", T, {1, 4});
    tensor mulb_a = g.placeholder("mulb_a", T, {batch, 3}), mulb_b = g.placeholder("mulb_b", T, {3});
    tensor muls = g.placeholder("muls", T, {batch, 3});
    tensor div_a = g.placeholder("div_a", T, {batch, 3}), div_b = g.placeholder("div_b", T, {3});
    tensor divs_a = g.placeholder("divs_a", T, {}), divs_b = g.placeholder("divs_b", T, {batch, 4});
    tensor pow_a = g.placeholder("pow_a", T, {batch, 3}), pow_b = g.placeholder("pow_b", T, {3});
    tensor min_a = g.placeholder("min_a", T, {batch, 3}), min_b = g.placeholder("min_b", T, {3});
    tensor max_a = g.placeholder("max_a", T, {3, 1}), max_b = g.placeholder("max_b", T, {1, 4});
    tensor sel_c = g.placeholder("sel_c", T, {batch, 3});  // the condition's source: not differentiated
    tensor sel_a = g.placeholder("sel_a", T, {batch, 3}), sel_b = g.placeholder("sel_b", T, {3});
    tensor y = weighted(g, add_a + add_b);
    y = y + weighted(g, sub_a - sub_b);
    y = y + weighted(g, mul_a * mul_b);
    y = y + weighted(g, mulb_a * mulb_b);
    y = y + weighted(g, muls * muls);  // one tensor as both operands: contributions are summed
    y = y + weighted(g, div_a / div_b);
    y = y + weighted(g, divs_a / divs_b);
    y = y + weighted(g, pow(pow_a, pow_b));
    y = y + weighted(g, minimum(min_a, min_b));
    y = y + weighted(g, maximum(max_a, max_b));
    y = y + weighted(g, where(sel_c > 0.0, sel_a, sel_b));
    g.output("y", y);
    tensor xs[] = {add_a, add_b, sub_a, sub_b, mul_a, mul_b, mulb_a, mulb_b, muls, div_a, div_b,
                   divs_a, divs_b, pow_a, pow_b, min_a, min_b, max_a, max_b, sel_a, sel_b, sel_c};
    const char* names[] = {"d_add_a", "d_add_b", "d_sub_a", "d_sub_b", "d_mul_a", "d_mul_b", "d_mulb_a", "d_mulb_b",
                           "d_muls", "d_div_a", "d_div_b", "d_divs_a", "d_divs_b", "d_pow_a", "d_pow_b", "d_min_a",
                           "d_min_b", "d_max_a", "d_max_b", "d_sel_a", "d_sel_b", "d_sel_c"};
    auto d = gradients(y, xs);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// ---- casts ---------------------------------------------------------------------------------------

// f64 -> f32 -> f64 in a function that is exact in f32 for dyadic inputs, so finite differences
// with a large, exactly representable h are exact; and an integer path that carries nothing:
// d/dx (x * cast(cast(x, i32), f64)) = trunc(x) away from integers.
template <dtype T> struct cast_model {
  constexpr graph operator()() const {
    graph g;
    tensor f = g.placeholder("f", T, {batch, 3});
    tensor n = g.placeholder("n", T, {batch, 3});
    tensor y = weighted(g, cast(cast(f, f32) * 3.0, T)) + reduce_sum(n * cast(cast(n, i32), T));
    g.output("y", y);
    auto [df, dn] = gradients(y, {f, n});
    g.output("d_f", df);
    g.output("d_n", dn);
    return g;
  }
};

// ---- reductions ----------------------------------------------------------------------------------

template <dtype T> struct reduce_model {
  constexpr graph operator()() const {
    graph g;
    tensor sum_axes = g.placeholder("sum_axes", T, {2, 3, 4});
    tensor sum_all = g.placeholder("sum_all", T, {batch, 3});
    tensor mean_keep = g.placeholder("mean_keep", T, {2, 3, 4});
    tensor mean_batch = g.placeholder("mean_batch", T, {batch, 3});
    tensor mean_all = g.placeholder("mean_all", T, {batch, 2, 2});
    tensor max_axis = g.placeholder("max_axis", T, {batch, 4});
    tensor max_axes = g.placeholder("max_axes", T, {2, 3, 4});
    tensor min_axis = g.placeholder("min_axis", T, {3, 4});
    tensor min_batch = g.placeholder("min_batch", T, {batch, 3});
    tensor y = weighted(g, reduce_sum(sum_axes, {0, 2}));             // two runs
    y = y + square(reduce_sum(sum_all));                              // over the batch dim too
    y = y + reduce_sum(square(reduce_mean(mean_keep, {1, 2}, true)));  // [2,1,1]
    y = y + weighted(g, reduce_mean(mean_batch, 0));                  // dynamic count
    y = y + square(reduce_mean(mean_all));
    y = y + reduce_sum(square(reduce_max(max_axis, 1)));
    y = y + weighted(g, reduce_max(max_axes, {0, 1}));
    y = y + weighted(g, reduce_min(min_axis, 0, true));               // [1,4]
    y = y + weighted(g, reduce_min(min_batch, {0}));
    g.output("y", y);
    tensor xs[] = {sum_axes, sum_all, mean_keep, mean_batch, mean_all, max_axis, max_axes, min_axis, min_batch};
    const char* names[] = {"d_sum_axes", "d_sum_all", "d_mean_keep", "d_mean_batch", "d_mean_all", "d_max_axis", "d_max_axes",
                           "d_min_axis", "d_min_batch"};
    auto d = gradients(y, xs);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// Ties are not differentiable; the documented convention splits the gradient equally among them.
template <dtype T> struct max_ties_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {2, 4});
    g.output("d_x", gradient(reduce_sum(reduce_max(x, 1) * g.constant({1.0, 10.0}, T, {2})), x));
    return g;
  }
};

// ---- layout and indexing -------------------------------------------------------------------------

template <dtype T> struct layout_model {
  constexpr graph operator()() const {
    graph g;
    tensor rs = g.placeholder("reshape", T, {batch, 6});
    tensor tr = g.placeholder("transpose", T, {2, 3, 4});
    tensor sl = g.placeholder("slice_mid", T, {batch, 5});
    tensor se = g.placeholder("slice_ends", T, {4, 3});
    tensor ca = g.placeholder("concat_a", T, {batch, 2}), cb = g.placeholder("concat_b", T, {batch, 3});
    tensor q = g.placeholder("gather_q", T, {batch, 4});
    tensor actions = g.placeholder("actions", i32, {batch});
    tensor emb = g.placeholder("gather_emb", T, {5, 3});
    tensor ids = g.placeholder("ids", i32, {batch, 2});
    tensor p3 = g.placeholder("gather_p3", T, {batch, 4, 3});
    tensor y = weighted(g, reshape(rs, {batch, 2, 3}));
    y = y + weighted(g, transpose(tr, {2, 0, 1}));                          // [4,2,3]
    y = y + weighted(g, slice(sl, 1, 1, 4));                                // [?,3]
    y = y + reduce_sum(square(slice(se, 0, 0, 1))) + weighted(g, slice(se, 0, 2, 4));  // both ends of one x
    y = y + reduce_sum(square(concat({ca, cb, ca}, 1)) * 0.5);             // concat_a used twice
    y = y + reduce_sum(square(gather(q, actions, 1, 1)));                  // q[b, actions[b]]
    y = y + weighted(g, gather(emb, ids));                                 // [?,2,3], repeated ids
    y = y + weighted(g, gather(p3, actions, 1, 1));                        // [?,3]
    g.output("y", y);
    tensor xs[] = {rs, tr, sl, se, ca, cb, q, emb, p3};
    const char* names[] = {"d_reshape", "d_transpose", "d_slice_mid", "d_slice_ends", "d_concat_a", "d_concat_b",
                           "d_gather_q", "d_gather_emb", "d_gather_p3"};
    auto d = gradients(y, xs);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// ---- matmul ----------------------------------------------------------------------------------------

template <dtype T> struct matmul_model {
  constexpr graph operator()() const {
    graph g;
    // 2-D, all four transpose variants: op(a) is [3,4], op(b) is [4,2]
    tensor a00 = g.placeholder("a00", T, {3, 4}), b00 = g.placeholder("b00", T, {4, 2});
    tensor a10 = g.placeholder("a10", T, {4, 3}), b10 = g.placeholder("b10", T, {4, 2});
    tensor a01 = g.placeholder("a01", T, {3, 4}), b01 = g.placeholder("b01", T, {2, 4});
    tensor a11 = g.placeholder("a11", T, {4, 3}), b11 = g.placeholder("b11", T, {2, 4});
    // dynamic batch rows: dW contracts over the batch dim
    tensor xd = g.placeholder("xd", T, {batch, 3}), wd = g.placeholder("wd", T, {3, 4});
    tensor xt = g.placeholder("xt", T, {batch, 3}), wt = g.placeholder("wt", T, {4, 3});
    // batched [2,3,4] x [2,4,2] and batched with transposes
    tensor ba = g.placeholder("ba", T, {2, 3, 4}), bb = g.placeholder("bb", T, {2, 4, 2});
    tensor bta = g.placeholder("bta", T, {2, 4, 3}), btb = g.placeholder("btb", T, {2, 2, 4});
    // shared weights [?,3,4] x [4,2], and transposed [?,4,3]^T x [2,4]^T
    tensor sa = g.placeholder("sa", T, {batch, 3, 4}), sb = g.placeholder("sb", T, {4, 2});
    tensor sta = g.placeholder("sta", T, {batch, 4, 3}), stb = g.placeholder("stb", T, {2, 4});
    tensor y = weighted(g, matmul(a00, b00));
    y = y + weighted(g, square(matmul(a10, b10, true, false)));
    y = y + weighted(g, square(matmul(a01, b01, false, true)));
    y = y + weighted(g, square(matmul(a11, b11, true, true)));
    y = y + weighted(g, square(matmul(xd, wd)));
    y = y + weighted(g, square(matmul(xt, wt, false, true)));
    y = y + weighted(g, square(matmul(ba, bb)));
    y = y + weighted(g, square(matmul(bta, btb, true, true)));
    y = y + weighted(g, square(matmul(sa, sb)));
    y = y + weighted(g, square(matmul(sta, stb, true, true)));
    g.output("y", y);
    tensor xs[] = {a00, b00, a10, b10, a01, b01, a11, b11, xd, wd, xt, wt, ba, bb, bta, btb, sa, sb, sta, stb};
    const char* names[] = {"d_a00", "d_b00", "d_a10", "d_b10", "d_a01", "d_b01", "d_a11", "d_b11", "d_xd", "d_wd",
                           "d_xt", "d_wt", "d_ba", "d_bb", "d_bta", "d_btb", "d_sa", "d_sb", "d_sta", "d_stb"};
    auto d = gradients(y, xs);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// ---- a 2-layer MLP with softmax cross-entropy ------------------------------------------------------

// loss = mean_b -log softmax(tanh(x W1 + b1) W2 + b2)[label_b], with a stop_gradient'ed max shift.
constexpr tensor mlp_loss(graph& g, tensor x, tensor labels, tensor w1, tensor b1, tensor w2, tensor b2) {
  (void)g;
  tensor h = tanh(matmul(x, w1) + b1);
  tensor logits = matmul(h, w2) + b2;
  tensor m = stop_gradient(reduce_max(logits, 1, true));
  tensor lse = log(reduce_sum(exp(logits - m), 1, true)) + m;
  tensor logp = logits - lse;
  return -reduce_mean(gather(logp, labels, 1, 1));
}

template <dtype T> struct mlp_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, 4});
    tensor labels = g.placeholder("labels", i32, {batch});
    tensor w1 = g.variable("w1", T, {4, 5}, init::glorot_uniform(1));
    tensor b1 = g.variable("b1", T, {5}, init::zeros());
    tensor w2 = g.variable("w2", T, {5, 3}, init::glorot_uniform(2));
    tensor b2 = g.variable("b2", T, {3}, init::zeros());
    tensor loss = mlp_loss(g, x, labels, w1, b1, w2, b2);
    g.output("y", loss);
    auto [dx, dw1, db1, dw2, db2] = gradients(loss, {x, w1, b1, w2, b2});
    g.output("d_x", dx);
    g.output("d_w1", dw1);
    g.output("d_b1", db1);
    g.output("d_w2", dw2);
    g.output("d_b2", db2);
    return g;
  }
};

// ---- second order ------------------------------------------------------------------------------------

// g(W) = d loss / dW and hv = d (g(W) . v) / dW = H v, built by differentiating the gradient graph.
template <dtype T> struct hvp_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, 3});
    tensor labels = g.placeholder("labels", i32, {batch});
    tensor w1 = g.placeholder("w1", T, {3, 4}), b1 = g.placeholder("b1", T, {4});
    tensor w2 = g.placeholder("w2", T, {4, 3}), b2 = g.placeholder("b2", T, {3});
    tensor v1 = g.placeholder("v1", T, {3, 4}), vb1 = g.placeholder("vb1", T, {4});
    tensor v2 = g.placeholder("v2", T, {4, 3}), vb2 = g.placeholder("vb2", T, {3});
    tensor loss = mlp_loss(g, x, labels, w1, b1, w2, b2);
    auto [g1, gb1, g2, gb2] = gradients(loss, {w1, b1, w2, b2});
    tensor gv = reduce_sum(g1 * v1) + reduce_sum(gb1 * vb1) + reduce_sum(g2 * v2) + reduce_sum(gb2 * vb2);
    auto [h1, hb1, h2, hb2] = gradients(gv, {w1, b1, w2, b2});
    g.output("y", gv);  // so that the generic checker differentiates g . v as well
    g.output("g_w1", g1);
    g.output("g_b1", gb1);
    g.output("g_w2", g2);
    g.output("g_b2", gb2);
    g.output("d_w1", h1);
    g.output("d_b1", hb1);
    g.output("d_w2", h2);
    g.output("d_b2", hb2);
    return g;
  }
};

// The gradient of a gradient through elementwise ops, a broadcast and a reduction:
// y = sum((d/dx sum(tanh(x) x^2 w))^2), whose gradient needs third derivatives of tanh.
template <dtype T> struct nested_elementwise_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, 3});
    tensor w = g.placeholder("w", T, {3});
    tensor gx = gradient(reduce_sum(tanh(x) * square(x) * w), x);
    tensor y = reduce_sum(square(gx));
    g.output("y", y);
    auto [dx, dw] = gradients(y, {x, w});
    g.output("d_x", dx);
    g.output("d_w", dw);
    return g;
  }
};

// ---- windows: conv2d and max_pool2d (ops/window.hpp) --------------------------------------------------

// Convolutions: im2col forward, col2im for dx, the row-folded contraction for dw.
template <dtype T> struct conv2d_model {
  constexpr graph operator()() const {
    graph g;
    tensor xv = g.placeholder("xv", T, {batch, 5, 5, 2}), wv = g.placeholder("wv", T, {2, 3, 2, 3});
    tensor xs = g.placeholder("xs", T, {batch, 5, 6, 2}), ws = g.placeholder("ws", T, {3, 3, 2, 2});
    tensor bs = g.placeholder("bs", T, {2});
    tensor x3 = g.placeholder("x3", T, {batch, 7, 7, 1}), w3 = g.placeholder("w3", T, {3, 3, 1, 2});
    tensor x1 = g.placeholder("x1", T, {batch, 3, 4, 3}), w1 = g.placeholder("w1", T, {1, 1, 3, 4});
    tensor y = weighted(g, conv2d(xv, wv));                                           // valid, stride 1
    y = y + weighted(g, square(conv2d(xs, ws, bs, 2, padding::same)));                // same, stride 2, bias
    y = y + weighted(g, tanh(conv2d(x3, w3, 2)));                                     // valid, stride 2 (crops)
    y = y + weighted(g, square(conv2d(x1, w1)));                                      // 1x1: no im2col, still folded
    g.output("y", y);
    tensor xs_[] = {xv, wv, xs, ws, bs, x3, w3, x1, w1};
    const char* names[] = {"d_xv", "d_wv", "d_xs", "d_ws", "d_bs", "d_x3", "d_w3", "d_x1", "d_w1"};
    auto d = gradients(y, xs_);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// Max pools: max_pool forward, max_pool_grad for dx (the inputs are distinct, so no ties).
template <dtype T> struct max_pool_model {
  constexpr graph operator()() const {
    graph g;
    tensor m2 = g.placeholder("max2", T, {batch, 5, 5, 2});          // stride == pool, crops
    tensor m3 = g.placeholder("max3same", T, {batch, 5, 4, 2});      // stride == pool, padded
    tensor mg = g.placeholder("max3s2", T, {batch, 6, 5, 2});        // overlapping windows
    tensor m1 = g.placeholder("max3s1same", T, {batch, 4, 3, 2});    // stride 1, padded all round
    tensor y = weighted(g, square(max_pool2d(m2, 2)));
    y = y + weighted(g, max_pool2d(m3, 3, 0, padding::same));
    y = y + weighted(g, square(max_pool2d(mg, 3, 2)));
    y = y + weighted(g, square(max_pool2d(m1, 3, 1, padding::same)));
    g.output("y", y);
    tensor xs[] = {m2, m3, mg, m1};
    const char* names[] = {"d_max2", "d_max3same", "d_max3s2", "d_max3s1same"};
    auto d = gradients(y, xs);
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

// Second order through the family: z = <dy/dx, v> + <dy/dw, u> differentiates col2im into im2col,
// max_pool_grad into max_pool_select and the folded contraction into ordinary products.
template <dtype T> struct window_hvp_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, 6, 5, 2}), w = g.placeholder("w", T, {3, 2, 2, 3});
    tensor v = g.placeholder("v", T, {batch, 6, 5, 2}), u = g.placeholder("u", T, {3, 2, 2, 3});
    tensor h = tanh(conv2d(x, w, 1, padding::same));                    // [?,6,5,3]
    tensor y = weighted(g, square(max_pool2d(h, 2, 0, padding::same)));  // [?,3,3,3]
    auto [dx, dw] = gradients(y, {x, w});
    tensor z = reduce_sum(dx * v) + reduce_sum(dw * u);
    g.output("y", z);
    auto [ddx, ddw] = gradients(z, {x, w});
    g.output("d_x", ddx);
    g.output("d_w", ddw);
    return g;
  }
};

}  // namespace gradient_models

// ---- inputs (host compiler only) ---------------------------------------------------------------------

#ifndef __CUDACC__
#include <string>
#include <vector>
#include "test_gradients_check.hpp"

namespace gradient_models {

// Every input of the unary model, with a domain that suits its op (positive for log/sqrt/rsqrt,
// away from the kink at 0 for abs/relu/sign).
inline std::vector<gc::input> unary_inputs() {
  std::vector<gc::input> v;
  const char* names[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "square", "tanh", "sigmoid", "relu", "softplus", "sign", "chain"};
  std::uint64_t seed = 10;
  for (const char* n : names) {
    const std::string s = n;
    if (s == "log" || s == "sqrt" || s == "rsqrt") v.push_back(gc::make(s, {2, 3}, 0.5, 2.0, seed++));
    else v.push_back(gc::make(s, {2, 3}, -2.0, 2.0, seed++, 0.2));
  }
  return v;
}

inline std::vector<gc::input> binary_inputs() {
  using gc::make;
  const std::int64_t B = 2;
  return {make("add_a", {B, 3}, -1, 1, 1), make("add_b", {3}, -1, 1, 2),
          make("sub_a", {3, 1}, -1, 1, 3), make("sub_b", {1, 4}, -1, 1, 4),
          make("mul_a", {3, 1}, -1, 1, 5), make("mul_b", {1, 4}, -1, 1, 6),
          make("mulb_a", {B, 3}, -1, 1, 7), make("mulb_b", {3}, -1, 1, 8),
          make("muls", {B, 3}, -1, 1, 9),
          make("div_a", {B, 3}, -1, 1, 10), make("div_b", {3}, 0.5, 2, 11),
          make("divs_a", {}, -1, 1, 12), make("divs_b", {B, 4}, 0.5, 2, 13),
          make("pow_a", {B, 3}, 0.5, 2, 14), make("pow_b", {3}, -1.5, 2, 15),
          make("min_a", {B, 3}, -1, 1, 16), make("min_b", {3}, -1, 1, 17),
          make("max_a", {3, 1}, -1, 1, 18), make("max_b", {1, 4}, -1, 1, 19),
          make("sel_c", {B, 3}, -1, 1, 20, 0.1), make("sel_a", {B, 3}, -1, 1, 21), make("sel_b", {3}, -1, 1, 22)};
}

inline std::vector<gc::input> reduce_inputs(std::int64_t B) {
  using gc::make;
  return {make("sum_axes", {2, 3, 4}, -1, 1, 31), make("sum_all", {B, 3}, -1, 1, 32),
          make("mean_keep", {2, 3, 4}, -1, 1, 33), make("mean_batch", {B, 3}, -1, 1, 34),
          make("mean_all", {B, 2, 2}, -1, 1, 35), make("max_axis", {B, 4}, -1, 1, 36),
          make("max_axes", {2, 3, 4}, -1, 1, 37), make("min_axis", {3, 4}, -1, 1, 38),
          make("min_batch", {B, 3}, -1, 1, 39)};
}

// The inputs of conv2d_model at batch B.
inline std::vector<gc::input> conv2d_inputs(std::int64_t B) {
  using gc::make;
  return {make("xv", {B, 5, 5, 2}, -1, 1, 101), make("wv", {2, 3, 2, 3}, -1, 1, 102), make("xs", {B, 5, 6, 2}, -1, 1, 103),
          make("ws", {3, 3, 2, 2}, -1, 1, 104),  make("bs", {2}, -1, 1, 105),           make("x3", {B, 7, 7, 1}, -1, 1, 106),
          make("w3", {3, 3, 1, 2}, -1, 1, 107),  make("x1", {B, 3, 4, 3}, -1, 1, 108),  make("w1", {1, 1, 3, 4}, -1, 1, 109)};
}

// The inputs of max_pool_model at batch B: continuous values, so no window holds a tie (nor two
// values within the finite-difference step of each other).
inline std::vector<gc::input> max_pool_inputs(std::int64_t B) {
  using gc::make;
  return {make("max2", {B, 5, 5, 2}, -2, 2, 111), make("max3same", {B, 5, 4, 2}, -2, 2, 112), make("max3s2", {B, 6, 5, 2}, -2, 2, 113),
          make("max3s1same", {B, 4, 3, 2}, -2, 2, 114)};
}

// The differentiated inputs of window_hvp_model at batch B (v and u are fed through `extra`).
inline std::vector<gc::input> window_hvp_inputs(std::int64_t B) {
  return {gc::make("x", {B, 6, 5, 2}, -1, 1, 121), gc::make("w", {3, 2, 2, 3}, -1, 1, 122)};
}
struct window_hvp_directions {
  std::vector<double> v, u;
  std::int64_t B;
  explicit window_hvp_directions(std::int64_t b) : v(gc::values(std::size_t(b * 6 * 5 * 2), -1, 1, 123)), u(gc::values(3 * 2 * 2 * 3, -1, 1, 124)), B(b) {}
  std::vector<kiln::feed> feeds() const { return {{"v", kiln::view(v, {B, 6, 5, 2})}, {"u", kiln::view(u, {3, 2, 2, 3})}}; }
};

}  // namespace gradient_models
#endif
