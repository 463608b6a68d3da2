// The graphs the CUDA tests run on both backends. Each list macro names the models of one test
// file; reference_*.cpp instantiate the CPU executors for them (compiled by g++), test_*.cu the
// CUDA ones (compiled by nvcc).
#pragma once
#include "graph/graph.hpp"
#include "graph/program.hpp"
#include "ops/elementwise.hpp"
#include "ops/indexing.hpp"
#include "ops/layout.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"
#include "ops/state.hpp"

namespace cuda_models {
using namespace kiln;

// ---- elementwise --------------------------------------------------------------------------------

inline constexpr auto broadcast_chain = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 4, 3});
  tensor row = g.placeholder("row", f32, {3});
  tensor col = g.placeholder("col", f32, {4, 1});
  tensor bias = g.variable("bias", f32, {1, 3}, init::uniform(-1, 1, 7));
  tensor y = (x + row) * col - bias * 2.0;
  g.output("y", exp(-square(y) * 0.1) + y / 3.0);
  g.output("lead", x * reduce_sum(x, {1, 2}, true));  // a per-batch [?,1,1] factor
  g.output("scalar_row", row * 0.5 + 1.0);
  return g;
};

inline constexpr auto unary_ops = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 16});
  tensor pos = abs(x) + 0.25;
  g.output("neg", -x);
  g.output("abs", abs(x));
  g.output("exp", exp(x));
  g.output("log", log(pos));
  g.output("sqrt", sqrt(pos));
  g.output("rsqrt", rsqrt(pos));
  g.output("square", square(x));
  g.output("tanh", tanh(x));
  g.output("sigmoid", sigmoid(x));
  g.output("relu", relu(x));
  g.output("softplus", softplus(x * 10.0));
  g.output("sign", sign(x));
  g.output("cast_i32", cast(x * 4.0, i32));
  g.output("not", logical_not(x > 0.0));
  g.output("f64", exp(cast(x, f64)) + tanh(cast(x, f64)));
  return g;
};

inline constexpr auto binary_ops = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {batch, 8});
  tensor b = g.placeholder("b", f32, {8});
  g.output("add", a + b);
  g.output("sub", a - b);
  g.output("mul", a * b);
  g.output("div", a / (abs(b) + 0.5));
  g.output("pow", pow(abs(a) + 0.5, b));
  g.output("minimum", minimum(a, b));
  g.output("maximum", maximum(a, b));
  g.output("less", a < b);
  g.output("less_equal", a <= b);
  g.output("greater", a > b);
  g.output("greater_equal", a >= b);
  g.output("equal", equal(a, b));
  g.output("not_equal", not_equal(a, b));
  g.output("and", logical_and(a > 0.0, b > 0.0));
  g.output("or", logical_or(a > 0.0, b > 0.0));
  g.output("where", where(a > b, a * 2.0, b));
  return g;
};

inline constexpr auto integer_ops = [] {
  graph g;
  tensor a = g.placeholder("a", i32, {batch, 6});
  tensor b = g.placeholder("b", i64, {6});
  tensor d = abs(a) + 1;
  g.output("i32", (a + 3) * a - a / d + minimum(a, d) - maximum(a, -d) + abs(a) + sign(a) - neg(a));
  g.output("i32_pow", pow(d, sign(a) * sign(a) + 1));
  g.output("i64", b * 1000000007 + b / 3 - square(b));
  g.output("mix", cast(a, i64) + b);
  return g;
};

inline constexpr auto immediates = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 5});
  g.output("iota", g.iota({2, 5}, f32, 1.0, 0.5));
  g.output("iota_i64", g.iota({7}, i64, -3, 2));
  g.output("fill", g.fill({3, 2}, 4.5, f32));
  g.output("scalar", g.scalar(2.0, f32));
  g.output("shifted", x + g.iota({5}, f32, 0, 1));
  g.output("ones", ones_like(x) * 3.0);
  return g;
};

// ---- reductions ---------------------------------------------------------------------------------

inline constexpr auto reductions = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 5, 7});
  g.output("sum_all", reduce_sum(x));
  g.output("sum_0", reduce_sum(x, {0}));
  g.output("sum_1", reduce_sum(x, {1}));
  g.output("sum_2_keep", reduce_sum(x, {2}, true));
  g.output("mean_02", reduce_mean(x, {0, 2}));
  g.output("mean_12_keep", reduce_mean(x, {1, 2}, true));
  g.output("max_1", reduce_max(x, {1}));
  g.output("max_2", reduce_max(x, {-1}));
  g.output("min_0", reduce_min(x, {0}, true));
  g.output("min_12", reduce_min(x, {1, 2}));
  g.output("argmax_2", argmax(x, 2));
  g.output("argmax_1", argmax(x, 1));
  g.output("fused", reduce_sum(exp(x * 0.5) - 1.0, {2}));
  g.output("softmax", exp(x - reduce_max(x, {2}, true)) / reduce_sum(exp(x - reduce_max(x, {2}, true)), {2}, true));
  return g;
};

inline constexpr auto integer_reductions = [] {
  graph g;
  tensor x = g.placeholder("x", i32, {batch, 9});
  g.output("sum", reduce_sum(x, {1}));
  g.output("max", reduce_max(x, {0}));
  g.output("mean", reduce_mean(x, {1}));
  g.output("argmax", argmax(cast(x, f64), 1));
  return g;
};

// Long reductions take the two-pass (split) paths.
inline constexpr auto long_reductions = [] {
  graph g;
  tensor rows = g.placeholder("rows", f32, {2, 100000});
  tensor cols = g.placeholder("cols", f32, {40000, 3});
  g.output("row_sum", reduce_sum(rows, {1}));
  g.output("row_mean", reduce_mean(rows, {1}));
  g.output("row_max", reduce_max(rows * 2.0, {1}));
  g.output("all_sum", reduce_sum(rows));
  g.output("col_sum", reduce_sum(cols, {0}));
  g.output("col_min", reduce_min(cols, {0}));
  g.output("col_mean", reduce_mean(square(cols), {0}, true));
  return g;
};

// ---- matmul ---------------------------------------------------------------------------------------

inline constexpr auto matmul_transposes = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {13, 9});   // [M,K]
  tensor at = g.placeholder("at", f32, {9, 13}); // [K,M]
  tensor b = g.placeholder("b", f32, {9, 11});   // [K,N]
  tensor bt = g.placeholder("bt", f32, {11, 9}); // [N,K]
  g.output("nn", matmul(a, b));
  g.output("tn", matmul(at, b, true, false));
  g.output("nt", matmul(a, bt, false, true));
  g.output("tt", matmul(at, bt, true, true));
  g.output("f64", matmul(cast(a, f64), cast(b, f64)));
  return g;
};

inline constexpr auto matmul_batched = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {batch, 6, 5});
  tensor b = g.placeholder("b", f32, {batch, 5, 4});
  tensor bt = g.placeholder("bt", f32, {batch, 4, 5});
  tensor w = g.variable("w", f32, {5, 3}, init::normal(0, 1, 3));
  tensor wt = g.variable("wt", f32, {6, 3}, init::normal(0, 1, 4));
  g.output("bmm", matmul(a, b));
  g.output("bmm_nt", matmul(a, bt, false, true));
  g.output("bmm_tt", matmul(transpose(a), bt, true, true));
  g.output("shared", matmul(a, w));
  g.output("shared_t", matmul(a, wt, true, false));
  return g;
};

inline constexpr auto dense_layers = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 32});
  tensor w1 = g.variable("w1", f32, {32, 64}, init::he_normal(1));
  tensor b1 = g.variable("b1", f32, {64}, init::uniform(-0.1, 0.1, 2));
  tensor w2 = g.variable("w2", f32, {64, 10}, init::glorot_uniform(3));
  tensor b2 = g.variable("b2", f32, {10}, init::uniform(-0.1, 0.1, 4));
  tensor h = relu(matmul(x, w1) + b1);   // epilogue fused into the matmul group
  tensor logits = matmul(h, w2) + b2;
  g.output("logits", logits);
  g.output("probs", sigmoid(logits));
  return g;
};

// ---- layout and indexing -------------------------------------------------------------------------

inline constexpr auto layouts = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 4, 6});
  tensor w = g.variable("w", i32, {3, 4, 5}, init::arange(0));
  g.output("t_021", transpose(x, {0, 2, 1}));
  g.output("t_210", transpose(w, {2, 1, 0}));
  g.output("t_102", transpose(w, {1, 0, 2}));
  g.output("slice_1", slice(x, 1, 1, 3));
  g.output("slice_2", slice(x, 2, -4, -1));
  g.output("concat_1", concat({x, slice(x, 1, 0, 2), x * 2.0}, 1));
  g.output("concat_2", concat({x, x + 1.0}, -1));
  g.output("stack", stack({slice(x, 2, 0, 1), slice(x, 2, 5, 6)}, 1));
  g.output("reshaped", reshape(transpose(x, {0, 2, 1}), {batch, 24}));
  return g;
};

inline constexpr auto gathers = [] {
  graph g;
  tensor table = g.variable("table", f32, {10, 4}, init::uniform(-1, 1, 9));
  tensor ids = g.placeholder("ids", i32, {batch, 3});
  tensor q = g.placeholder("q", f32, {batch, 6});
  tensor action = g.placeholder("action", i64, {batch});
  tensor picks = g.placeholder("picks", i32, {2});
  g.output("embed", gather(table, ids));                    // [?,3,4]
  g.output("columns", gather(table, picks, 1));             // [10,2]
  g.output("per_row", gather(q, action, 1, 1));             // q[b, action[b]]
  g.output("one_hot", one_hot(action, 6));
  g.output("one_hot_i32", one_hot(ids, 5, i32, 7, -1));
  return g;
};

// ---- state ----------------------------------------------------------------------------------------

// One step of linear regression by gradient descent; w and b change on every run.
inline constexpr auto sgd_step = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 3});
  tensor y = g.placeholder("y", f32, {batch, 1});
  tensor w = g.variable("w", f32, {3, 1}, init::zeros());
  tensor b = g.variable("b", f32, {1}, init::constant(0.5));
  tensor step = g.variable("step", i64, {}, init::zeros(), false);
  tensor err = matmul(x, w) + b - y;
  tensor loss = reduce_mean(square(err));
  tensor grad_w = reshape(reduce_mean(x * err, {0}), {3, 1}) * 2.0;
  tensor grad_b = reduce_mean(err, {0}) * 2.0;
  g.output("loss", loss);
  g.output("w", assign_sub(w, grad_w * 0.1));
  g.output("b", assign_sub(b, grad_b * 0.1));
  g.output("step", assign_add(step, g.scalar(1, i64)));
  return g;
};

}  // namespace cuda_models

#define KILN_CUDA_ELEMENTWISE_MODELS(X) X(broadcast_chain) X(unary_ops) X(binary_ops) X(integer_ops) X(immediates)
#define KILN_CUDA_REDUCE_MODELS(X) X(reductions) X(integer_reductions) X(long_reductions)
#define KILN_CUDA_MATMUL_MODELS(X) X(matmul_transposes) X(matmul_batched) X(dense_layers)
#define KILN_CUDA_LAYOUT_MODELS(X) X(layouts) X(gathers) X(sgd_step)
