// Gradients of the vision ops (conv2d, max/avg pooling, global average pooling, batch norm in
// training and inference mode), all compositions of existing ops, checked against central
// finite differences on f64 graphs (tests/test_gradients_check.hpp). Dropout is checked in
// test_vision_ops.cpp instead: its mask changes every run, so finite differences do not apply.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "nn/layers.hpp"
#include "test_gradients_check.hpp"

using namespace kiln;
using gc::check_gradients;
using gc::make;

namespace {

// A non-uniform upstream: sum(t^2 / 4 + t · w) with w varying along the last axis.
constexpr tensor objective(graph& g, tensor t) {
  const std::int64_t n = t.shape().dim[t.rank() - 1];
  return reduce_sum(square(t) * 0.25 + t * g.iota({n}, f64, -1.0, 0.7));
}

// ---- conv2d --------------------------------------------------------------------------------------

struct conv_model {
  constexpr graph operator()() const {
    graph g;
    tensor xv = g.placeholder("xv", f64, {batch, 5, 5, 2}), wv = g.placeholder("wv", f64, {2, 3, 2, 3});
    tensor xs = g.placeholder("xs", f64, {batch, 5, 6, 2}), ws = g.placeholder("ws", f64, {3, 3, 2, 2});
    tensor bs = g.placeholder("bs", f64, {2});
    tensor x3 = g.placeholder("x3", f64, {batch, 7, 7, 1}), w3 = g.placeholder("w3", f64, {3, 3, 1, 2});
    tensor y = objective(g, conv2d(xv, wv)) +                                  // valid, stride 1
               objective(g, conv2d(xs, ws, bs, 2, padding::same)) +            // same, stride 2, bias
               objective(g, relu(conv2d(x3, w3, 2, padding::valid)));          // valid, stride 2, relu
    g.output("y", y);
    auto d = gradients(y, {xv, wv, xs, ws, bs, x3, w3});
    const char* names[] = {"d_xv", "d_wv", "d_xs", "d_ws", "d_bs", "d_x3", "d_w3"};
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

auto& conv_executor() {
  static auto ex = compile<cpu>(conv_model{});
  return ex;
}

void check_conv(std::vector<std::string> which) {
  const std::int64_t B = 2;
  std::vector<gc::input> ins = {make("xv", {B, 5, 5, 2}, -1, 1, 1), make("wv", {2, 3, 2, 3}, -1, 1, 2), make("xs", {B, 5, 6, 2}, -1, 1, 3),
                                make("ws", {3, 3, 2, 2}, -1, 1, 4),  make("bs", {2}, -1, 1, 5),           make("x3", {B, 7, 7, 1}, -1, 1, 6),
                                make("w3", {3, 3, 1, 2}, -1, 1, 7)};
  check_gradients(conv_executor(), ins, {}, std::move(which));
}

}  // namespace

TEST_CASE("vision_gradients.conv2d.valid") { check_conv({"xv", "wv"}); }
TEST_CASE("vision_gradients.conv2d.same_stride2_bias") { check_conv({"xs", "ws", "bs"}); }
TEST_CASE("vision_gradients.conv2d.valid_stride2_relu") { check_conv({"x3", "w3"}); }

// ---- pooling --------------------------------------------------------------------------------------

namespace {

struct pool_model {
  constexpr graph operator()() const {
    graph g;
    tensor m2 = g.placeholder("max2", f64, {batch, 5, 5, 2});         // stride == pool, crops
    tensor m3 = g.placeholder("max3same", f64, {batch, 5, 4, 2});     // stride == pool, -inf padding
    tensor mg = g.placeholder("max3s2", f64, {batch, 6, 5, 2});       // overlapping windows
    tensor a2 = g.placeholder("avg2", f64, {batch, 5, 4, 2});
    tensor a3 = g.placeholder("avg3same", f64, {batch, 5, 4, 2});     // padded entries not counted
    tensor ag = g.placeholder("avg2s1same", f64, {batch, 4, 5, 2});
    tensor gp = g.placeholder("gap", f64, {batch, 3, 4, 3});
    tensor y = objective(g, max_pool2d(m2, 2)) + objective(g, max_pool2d(m3, 3, 0, padding::same)) +
               objective(g, max_pool2d(mg, 3, 2)) + objective(g, avg_pool2d(a2, 2)) +
               objective(g, avg_pool2d(a3, 3, 3, padding::same)) + objective(g, avg_pool2d(ag, 2, 1, padding::same)) +
               objective(g, global_average_pooling(gp));
    g.output("y", y);
    auto d = gradients(y, {m2, m3, mg, a2, a3, ag, gp});
    const char* names[] = {"d_max2", "d_max3same", "d_max3s2", "d_avg2", "d_avg3same", "d_avg2s1same", "d_gap"};
    for (std::size_t i = 0; i < d.size(); ++i) g.output(names[i], d[i]);
    return g;
  }
};

void check_pool(std::vector<std::string> which) {
  static auto ex = compile<cpu>(pool_model{});
  const std::int64_t B = 2;
  // distinct values (no ties within a window, where max has no derivative)
  std::vector<gc::input> ins = {make("max2", {B, 5, 5, 2}, -2, 2, 11),   make("max3same", {B, 5, 4, 2}, -2, 2, 12),
                                make("max3s2", {B, 6, 5, 2}, -2, 2, 13), make("avg2", {B, 5, 4, 2}, -2, 2, 14),
                                make("avg3same", {B, 5, 4, 2}, -2, 2, 15), make("avg2s1same", {B, 4, 5, 2}, -2, 2, 16),
                                make("gap", {B, 3, 4, 3}, -2, 2, 17)};
  check_gradients(ex, ins, {}, std::move(which));
}

}  // namespace

TEST_CASE("vision_gradients.max_pool2d") { check_pool({"max2", "max3same", "max3s2"}); }
TEST_CASE("vision_gradients.avg_pool2d") { check_pool({"avg2", "avg3same", "avg2s1same"}); }
TEST_CASE("vision_gradients.global_average_pooling") { check_pool({"gap"}); }

// ---- batch normalization ----------------------------------------------------------------------------

namespace {

template <bool Training> struct bn_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f64, {batch, 3, 3, 2});
    tensor v = g.placeholder("v", f64, {batch, 3});
    tensor y = objective(g, batch_norm(g, "bn", x, Training)) + objective(g, batch_norm(g, "bn2d", v, Training, 0.9, 0.01));
    g.output("y", y);
    auto vars = std::array{g.variable("bn/gamma", f64, {2}, init::constant(1)), g.variable("bn/beta", f64, {2}, init::constant(0)),
                           g.variable("bn2d/gamma", f64, {3}, init::constant(1))};
    auto d = gradients(y, {x, v, vars[0], vars[1], vars[2]});
    g.output("d_x", d[0]);
    g.output("d_v", d[1]);
    g.output("d_bn/gamma", d[2]);
    g.output("d_bn/beta", d[3]);
    g.output("d_bn2d/gamma", d[4]);
    return g;
  }
};

template <bool Training> void check_bn() {
  auto ex = compile<cpu>(bn_model<Training>{});
  const std::int64_t B = 3;
  gc::input gamma = make("bn/gamma", {2}, 0.5, 2, 21), beta = make("bn/beta", {2}, -1, 1, 22), gamma2 = make("bn2d/gamma", {3}, 0.5, 2, 23);
  gamma.variable = beta.variable = gamma2.variable = true;
  if (!Training) {  // non-trivial moving statistics
    const double mean[] = {0.3, -0.2}, var[] = {0.8, 1.7};
    for (int c = 0; c < 2; ++c) {
      ex.template variable<double>("bn/moving_mean").flat()[std::size_t(c)] = mean[c];
      ex.template variable<double>("bn/moving_variance").flat()[std::size_t(c)] = var[c];
    }
  }
  std::vector<gc::input> ins = {make("x", {B, 3, 3, 2}, -2, 2, 24), make("v", {B, 3}, -2, 2, 25), gamma, beta, gamma2};
  check_gradients(ex, ins);
}

}  // namespace

TEST_CASE("vision_gradients.batch_norm.training") { check_bn<true>(); }
TEST_CASE("vision_gradients.batch_norm.inference") { check_bn<false>(); }

// ---- second order through the window ops ------------------------------------------------------------
// conv2d and max_pool2d differentiate into col2im and max_pool_grad, whose own gradients are
// im2col and max_pool_select: a Hessian-vector product z = <d y/d x, v> + <d y/d w, u> exercises
// every rule of the family, checked by finite differences of z.

namespace {

struct second_order_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f64, {batch, 6, 5, 2}), w = g.placeholder("w", f64, {3, 2, 2, 3});
    tensor v = g.placeholder("v", f64, {batch, 6, 5, 2}), u = g.placeholder("u", f64, {3, 2, 2, 3});
    tensor h = tanh(conv2d(x, w, 1, padding::same));                        // [?,6,5,3]
    tensor y = objective(g, square(max_pool2d(h, 2, 0, padding::same)));   // [?,3,3,3]
    // relu -> max pool: the relu's mask folds into the pool's routing (positive_only), both
    // when the relu runs on a conv layer's [?,Ho·Wo,F] rows (as layers::conv2d does) and on NHWC
    const tensor conv = conv2d(x, w, 1, padding::valid);  // [?,4,4,3]
    const tensor rows = reshape(conv, {batch, 16, 3});
    y = y + objective(g, square(max_pool2d(reshape(relu(rows), conv.shape()), 2)));  // tiles: [?,2,2,3]
    y = y + objective(g, square(max_pool2d(relu(conv2d(x, w, 1, padding::same)), 3, 2)));  // overlapping
    auto d = gradients(y, {x, w});
    tensor z = reduce_sum(d[0] * v) + reduce_sum(d[1] * u);
    g.output("y", z);
    auto dz = gradients(z, {x, w});
    g.output("d_x", dz[0]);
    g.output("d_w", dz[1]);
    return g;
  }
};

}  // namespace

TEST_CASE("vision_gradients.second_order.conv_max_pool") {
  static auto ex = compile<cpu>(second_order_model{});
  using P = program<second_order_model>;
  int masked = 0;
  for (const node& n : P::nodes) masked += (n.kind == op::max_pool_grad || n.kind == op::max_pool_select) && window_geometry::of(n).positive_only;
  CHECK(masked >= 2);
  const std::int64_t B = 2;
  std::vector<gc::input> ins = {make("x", {B, 6, 5, 2}, -1, 1, 31), make("w", {3, 2, 2, 3}, -1, 1, 32)};
  const auto v = gc::values(std::size_t(B * 6 * 5 * 2), -1, 1, 33), u = gc::values(3 * 2 * 2 * 3, -1, 1, 34);
  check_gradients(ex, ins, {{"v", view(v, {B, 6, 5, 2})}, {"u", view(u, {3, 2, 2, 3})}});
}

// ---- max pooling with ties -------------------------------------------------------------------------

namespace {

// C channels: 2 (the scalar kernel) or 16 (whole packets of every ISA: the packet kernel). With
// Relu, the pool reads relu(x) and its gradient is routed only where the maximum is positive.
template <std::int64_t C, bool Relu = false> struct tie_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 5, 5, C});
    tensor up = g.placeholder("up", f32, {batch, 3, 3, C});
    tensor y = max_pool2d(Relu ? relu(x) : x, 2, 0, padding::same);  // pads the last row and column
    g.output("y", y);
    g.output("dx", gradients(y, {x}, up)[0]);
    return g;
  }
};

// TF's MaxPoolGrad: the whole upstream of a window goes to its first maximum in row-major order.
// Even channels: constant 1.5 (every window ties); odd channels: x = -1 - (row + col) % 2, so
// every window's maxima (-1) lie on the even diagonals. With Relu the odd channels pool zeros
// (relu of negatives), whose gradient is zero everywhere.
template <std::int64_t C, bool Relu> void check_ties_go_to_the_first_maximum() {
  auto ex = compile<cpu>(tie_model<C, Relu>{});
  const std::int64_t B = 2;
  std::vector<float> x(std::size_t(B * 25 * C)), up(std::size_t(B * 9 * C));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t r = 0; r < 5; ++r)
      for (std::int64_t c = 0; c < 5; ++c)
        for (std::int64_t ch = 0; ch < C; ++ch)
          x[std::size_t(((b * 5 + r) * 5 + c) * C + ch)] = ch % 2 == 0 ? 1.5f : -1.0f - float((r + c) % 2);
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = float(i + 1);
  const auto& out = ex.run({{"x", view(x, {B, 5, 5, C})}, {"up", view(up, {B, 3, 3, C})}});
  const auto y = out.template get<float>("y").flat();
  const auto dx = out.template get<float>("dx").flat();
  std::vector<float> want(x.size(), 0.0f);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t p = 0; p < 3; ++p)
      for (std::int64_t q = 0; q < 3; ++q)
        for (std::int64_t ch = 0; ch < C; ++ch) {
          const std::size_t o = std::size_t(((b * 3 + p) * 3 + q) * C + ch);
          const float pooled = ch % 2 == 0 ? 1.5f : (Relu ? 0.0f : -1.0f);
          CHECK(y[o] == pooled);
          // first maximum: the window's top-left entry (2p, 2q) has an even diagonal in both patterns
          if (!Relu || pooled > 0) want[std::size_t(((b * 5 + 2 * p) * 5 + 2 * q) * C + ch)] += up[o];
        }
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(dx[i] == want[i]);
}

}  // namespace

TEST_CASE("vision_gradients.max_pool2d.ties_go_to_the_first_maximum") {
  check_ties_go_to_the_first_maximum<2, false>();
  check_ties_go_to_the_first_maximum<16, false>();
}

TEST_CASE("vision_gradients.max_pool2d.relu_folded_gradient_routes_only_positive_maxima") {
  check_ties_go_to_the_first_maximum<2, true>();
  check_ties_go_to_the_first_maximum<16, true>();
}

// ---- the weight gradient of a convolution at many batch sizes ---------------------------------------
// dW = sum over the batch and every output position of cols^T · upstream: one GEMM over all rows
// (small outputs: a register-blocked kernel; larger ones: Eigen, split over threads), compared with
// a direct loop.

namespace {

template <std::int64_t C, std::int64_t F> struct weight_grad_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 6, 6, C}), w = g.placeholder("w", f32, {3, 3, C, F});
    tensor up = g.placeholder("up", f32, {batch, 6, 6, F});
    g.output("dw", gradients(conv2d(x, w, 1, padding::same), {w}, up)[0]);
    return g;
  }
};

template <std::int64_t C, std::int64_t F> void check_weight_grad(std::int64_t B) {
  static auto ex = compile<cpu>(weight_grad_model<C, F>{});
  const auto x = kt::uniform<float>(std::size_t(B * 36 * C), -1, 1, 41 + std::uint64_t(B));
  const auto w = kt::uniform<float>(std::size_t(9 * C * F), -1, 1, 42);
  const auto up = kt::uniform<float>(std::size_t(B * 36 * F), -1, 1, 43 + std::uint64_t(B));
  const auto dw = ex.run({{"x", view(x, {B, 6, 6, C})}, {"w", view(w, {3, 3, C, F})}, {"up", view(up, {B, 6, 6, F})}}).template get<float>("dw").flat();
  REQUIRE(std::size_t(dw.size()) == std::size_t(9 * C * F));
  double worst = 0, scale = 1;
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t f = 0; f < F; ++f) {
          double s = 0;  // same padding, stride 1: output (p, q) reads input (p + i - 1, q + j - 1)
          for (std::int64_t b = 0; b < B; ++b)
            for (std::int64_t p = 0; p < 6; ++p)
              for (std::int64_t q = 0; q < 6; ++q) {
                const std::int64_t r = p + i - 1, s2 = q + j - 1;
                if (r < 0 || r >= 6 || s2 < 0 || s2 >= 6) continue;
                s += double(x[std::size_t(((b * 6 + r) * 6 + s2) * C + c)]) * double(up[std::size_t(((b * 6 + p) * 6 + q) * F + f)]);
              }
          scale = std::max(scale, std::fabs(s));
          worst = std::max(worst, std::fabs(s - double(dw[std::size_t(((i * 3 + j) * C + c) * F + f)])));
        }
  INFO("batch " << B << ", C " << C << ", F " << F);
  CHECK(worst <= 2e-5 * scale * std::sqrt(double(B * 36 + 1)));
}

}  // namespace

TEST_CASE("vision_gradients.conv2d.weight_gradient_small_output") {
  for (std::int64_t B : {0, 1, 7, 300}) check_weight_grad<3, 8>(B);
}
TEST_CASE("vision_gradients.conv2d.weight_gradient_large_output") {
  for (std::int64_t B : {1, 5, 120}) check_weight_grad<16, 32>(B);
}
