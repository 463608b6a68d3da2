// gradients(), part 2: layout (reshape, transpose, slice, concat), gather with batch_dims 0 and 1,
// matmul in every transpose variant (2-D, dynamic batch, batched, shared weights), a 2-layer MLP
// with a softmax cross-entropy loss, and second order (Hessian-vector products), each checked
// against central finite differences on f64 graphs (tests/test_gradients_check.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_gradients_check.hpp"

using namespace kiln;
using gc::check_gradients;
using gc::make;
using gc::weighted;

namespace {

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

auto& layout_executor() {
  static auto ex = compile<cpu>(layout_model<f64>{});
  return ex;
}

const std::int64_t B = 3;
std::vector<std::int32_t> actions = {2, 0, 3}, ids = {1, 4, 4, 0, 1, 1};

void check_layout(std::vector<std::string> which) {
  std::vector<gc::input> ins = {make("reshape", {B, 6}, -1, 1, 1),       make("transpose", {2, 3, 4}, -1, 1, 2),
                                make("slice_mid", {B, 5}, -1, 1, 3),     make("slice_ends", {4, 3}, -1, 1, 4),
                                make("concat_a", {B, 2}, -1, 1, 5),      make("concat_b", {B, 3}, -1, 1, 6),
                                make("gather_q", {B, 4}, -1, 1, 7),      make("gather_emb", {5, 3}, -1, 1, 8),
                                make("gather_p3", {B, 4, 3}, -1, 1, 9)};
  check_gradients(layout_executor(), ins, {{"actions", view(actions, {B})}, {"ids", view(ids, {B, 2})}}, std::move(which));
}

}  // namespace

TEST_CASE("gradients.layout.reshape") { check_layout({"reshape"}); }
TEST_CASE("gradients.layout.transpose") { check_layout({"transpose"}); }
TEST_CASE("gradients.layout.slice") { check_layout({"slice_mid", "slice_ends"}); }
TEST_CASE("gradients.layout.concat") { check_layout({"concat_a", "concat_b"}); }
TEST_CASE("gradients.indexing.gather_batch_dims_1") { check_layout({"gather_q", "gather_p3"}); }
TEST_CASE("gradients.indexing.gather_batch_dims_0") { check_layout({"gather_emb"}); }

// ---- matmul ----------------------------------------------------------------------------------------

namespace {

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

auto& matmul_executor() {
  static auto ex = compile<cpu>(matmul_model<f64>{});
  return ex;
}

void check_matmul(std::vector<std::string> which) {
  std::vector<gc::input> ins = {
      make("a00", {3, 4}, -1, 1, 1),  make("b00", {4, 2}, -1, 1, 2),  make("a10", {4, 3}, -1, 1, 3),
      make("b10", {4, 2}, -1, 1, 4),  make("a01", {3, 4}, -1, 1, 5),  make("b01", {2, 4}, -1, 1, 6),
      make("a11", {4, 3}, -1, 1, 7),  make("b11", {2, 4}, -1, 1, 8),  make("xd", {B, 3}, -1, 1, 9),
      make("wd", {3, 4}, -1, 1, 10),  make("xt", {B, 3}, -1, 1, 11),  make("wt", {4, 3}, -1, 1, 12),
      make("ba", {2, 3, 4}, -1, 1, 13), make("bb", {2, 4, 2}, -1, 1, 14), make("bta", {2, 4, 3}, -1, 1, 15),
      make("btb", {2, 2, 4}, -1, 1, 16), make("sa", {B, 3, 4}, -1, 1, 17), make("sb", {4, 2}, -1, 1, 18),
      make("sta", {B, 4, 3}, -1, 1, 19), make("stb", {2, 4}, -1, 1, 20)};
  check_gradients(matmul_executor(), ins, {}, std::move(which));
}

}  // namespace

TEST_CASE("gradients.matmul.nn") { check_matmul({"a00", "b00"}); }
TEST_CASE("gradients.matmul.tn") { check_matmul({"a10", "b10"}); }
TEST_CASE("gradients.matmul.nt") { check_matmul({"a01", "b01"}); }
TEST_CASE("gradients.matmul.tt") { check_matmul({"a11", "b11"}); }
TEST_CASE("gradients.matmul.dynamic_batch_rows") { check_matmul({"xd", "wd", "xt", "wt"}); }
TEST_CASE("gradients.matmul.batched") { check_matmul({"ba", "bb", "bta", "btb"}); }
TEST_CASE("gradients.matmul.shared_weights") { check_matmul({"sa", "sb", "sta", "stb"}); }

// ---- a 2-layer MLP with softmax cross-entropy ------------------------------------------------------

namespace {

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

}  // namespace

TEST_CASE("gradients.nn.mlp_softmax_cross_entropy") {
  auto ex = compile<cpu>(mlp_model<f64>{});
  std::vector<std::int32_t> labels = {2, 0, 1, 1};
  std::vector<gc::input> ins = {make("x", {4, 4}, -1, 1, 1)};
  for (auto [name, d, seed] : {std::tuple{"w1", dims{4, 5}, 2}, {"b1", dims{5}, 3}, {"w2", dims{5, 3}, 4}, {"b2", dims{3}, 5}}) {
    ins.push_back(make(name, d, -1, 1, std::uint64_t(seed)));
    ins.back().variable = true;
  }
  check_gradients(ex, ins, {{"labels", view(labels, {4})}});
  // a different batch size: the mean over the batch divides by the fed batch
  std::vector<std::int32_t> labels2 = {1, 2};
  ins[0] = make("x", {2, 4}, -1, 1, 9);
  check_gradients(ex, ins, {{"labels", view(labels2, {2})}});
}

// ---- second order ------------------------------------------------------------------------------------

namespace {

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

}  // namespace

TEST_CASE("gradients.second_order.hessian_vector_product") {
  auto ex = compile<cpu>(hvp_model<f64>{});
  std::vector<std::int32_t> labels = {0, 2, 1};
  std::vector<gc::input> ins = {make("x", {3, 3}, -1, 1, 1),   make("w1", {3, 4}, -1, 1, 2),  make("b1", {4}, -0.5, 0.5, 3),
                                make("w2", {4, 3}, -1, 1, 4),  make("b2", {3}, -0.5, 0.5, 5), make("v1", {3, 4}, -1, 1, 6),
                                make("vb1", {4}, -1, 1, 7),    make("v2", {4, 3}, -1, 1, 8),  make("vb2", {3}, -1, 1, 9)};
  const std::vector<feed> extra = {{"labels", view(labels, {3})}};
  const char* params[] = {"w1", "b1", "w2", "b2"};
  const char* dirs[] = {"v1", "vb1", "v2", "vb2"};
  auto find = [&](const std::string& n) -> gc::input& {
    for (auto& in : ins)
      if (in.name == n) return in;
    FAIL("no input " << n);
    return ins[0];
  };
  // analytic H v
  std::vector<std::vector<double>> hv;
  {
    const auto& out = gc::run_with(ex, ins, extra);
    for (const char* p : params) {
      auto t = out.get<double>(std::string("d_") + p);
      hv.emplace_back(t.flat().begin(), t.flat().end());
    }
  }
  // central differences of the gradient along v: (g(W + h v) - g(W - h v)) / 2h
  const double h = 1e-6;
  auto gradient_at = [&](double step) {
    auto moved = ins;
    for (int p = 0; p < 4; ++p) {
      auto& w = find(params[p]);
      auto& v = find(dirs[p]);
      for (auto& m : moved)
        if (m.name == w.name)
          for (std::size_t k = 0; k < m.values.size(); ++k) m.values[k] = w.values[k] + step * v.values[k];
    }
    const auto& out = gc::run_with(ex, moved, extra);
    std::vector<std::vector<double>> gs;
    for (const char* p : params) {
      auto t = out.get<double>(std::string("g_") + p);
      gs.emplace_back(t.flat().begin(), t.flat().end());
    }
    return gs;
  };
  const auto gp = gradient_at(h), gm = gradient_at(-h);
  double scale = 1;
  for (int p = 0; p < 4; ++p)
    for (double x : hv[std::size_t(p)]) scale = std::max(scale, std::fabs(x));
  bool nonzero = false;
  for (int p = 0; p < 4; ++p) {
    std::vector<double> want(hv[std::size_t(p)].size()), bound(want.size(), 1e-6 * scale);
    for (std::size_t k = 0; k < want.size(); ++k) {
      want[k] = (gp[std::size_t(p)][k] - gm[std::size_t(p)][k]) / (2 * h);
      nonzero = nonzero || std::fabs(want[k]) > 1e-3;
    }
    auto t = gc::run_with(ex, ins, extra).get<double>(std::string("d_") + params[p]);
    kt::check_bounded(params[p], t, find(params[p]).shape, want, bound);
  }
  CHECK(nonzero);
  // and element by element: d (g . v) / dW by finite differences of g . v
  check_gradients(ex, ins, extra, {"w1", "b1", "w2", "b2"});
}

// The gradient of a gradient through elementwise ops, a broadcast and a reduction:
// y = sum((d/dx sum(tanh(x) x^2 w))^2), whose gradient needs third derivatives of tanh.
TEST_CASE("gradients.second_order.nested_elementwise") {
  static constexpr auto model = [] {
    graph g;
    tensor x = g.placeholder("x", f64, {batch, 3});
    tensor w = g.placeholder("w", f64, {3});
    tensor gx = gradient(reduce_sum(tanh(x) * square(x) * w), x);
    tensor y = reduce_sum(square(gx));
    g.output("y", y);
    auto [dx, dw] = gradients(y, {x, w});
    g.output("d_x", dx);
    g.output("d_w", dw);
    return g;
  };
  auto ex = compile<cpu>(model);
  check_gradients(ex, {make("x", {2, 3}, -1.5, 1.5, 1), make("w", {3}, -1, 1, 2)});
}
