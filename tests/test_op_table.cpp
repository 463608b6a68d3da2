// The op table (graph/op_table.hpp), typed attributes (graph/attributes.hpp), the gradient-rule
// dispatch and the lowering of composite ops (ops/lowering.hpp): what an op is comes from its own
// row, attributes round-trip through their accessors, composites stay visible in the model view
// and never reach the planner.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_util.hpp"

using namespace kiln;

namespace {

// ---- every generated trait is the one written in the op's own row ------------------------------
// Re-expands the table: for each row, the traits the library derives for that op (by enum value)
// must equal the row's columns. Appending or moving a row cannot change another op's traits.
constexpr bool traits_match_rows() {
  bool ok = true;
#define KILN_CHECK_ROW(name, family, arity, cost, dtypes, gradient, lower)                                              \
  ok = ok && name_of(op::name) == #name && family_of(op::name) == op_family::family && arity_of(op::name) == (arity) && \
       cost_of(op::name) == (cost) && dtype_rule_of(op::name) == dtype_rule::dtypes &&                                   \
       gradient_kind_of(op::name) == grad_kind::gradient && is_composite(op::name) == (lowering::lower == lowering::composite);
  KILN_OP_TABLE(KILN_CHECK_ROW)
#undef KILN_CHECK_ROW
  return ok;
}
static_assert(traits_match_rows());

// Consistency between columns: composites are exactly the composite family, and sources have no
// inputs and no gradient.
constexpr bool columns_consistent() {
  for (std::size_t i = 0; i < op_count; ++i) {
    const op_info& r = op_infos[i];
    if ((r.family == op_family::composite) != (r.lower == lowering::composite)) return false;
    if (r.family == op_family::source && (r.arity != 0 || r.gradient != grad_kind::none)) return false;
    if (r.gradient == grad_kind::decompose && r.lower != lowering::composite) return false;
    if (r.family == op_family::elementwise && (r.arity < 1 || r.arity > 3)) return false;
  }
  return true;
}
static_assert(columns_consistent());

// Names are unique (they are what describe() and future exporters print).
constexpr bool names_unique() {
  for (std::size_t i = 0; i < op_count; ++i)
    for (std::size_t j = i + 1; j < op_count; ++j)
      if (op_infos[i].name == op_infos[j].name) return false;
  return true;
}
static_assert(names_unique());

// ---- attributes round-trip through their accessors ------------------------------------------------
template <class A> constexpr bool round_trips(const A& a) {
  node n;
  a.store(n);
  return A::of(n) == a;
}
static_assert(round_trips(matmul_attrs{true, false, true}));
static_assert(round_trips(reduce_attrs{1, 3, true}));
static_assert(round_trips(gather_attrs{2, 1}));
static_assert(round_trips(slice_attrs{3, 17}));
static_assert(round_trips(variable_attrs{init_kind::normal, -0.5, 2.5, 0xfedcba9876543210ull, 0}));
static_assert(round_trips(window_geometry{3, 2, 2, 1, 0, 1, 1, 5, 4, true}));

// ---- builders write named attributes and dedicated ops ----------------------------------------
static_assert([] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 4});
  tensor s = stop_gradient(x);
  tensor m = matmul(x, g.variable("w", f32, {3, 4}), false, true);
  tensor r = reduce_sum(m, axes{1}, true);
  return s.info().kind == op::stop_gradient && matmul_attrs::of(m.info()).transpose_b && !matmul_attrs::of(m.info()).transpose_a &&
         reduce_attrs::of(r.info()).first == 1 && reduce_attrs::of(r.info()).keepdims;
}());

// Variables say what they are for with flags, not sentinel values.
static_assert([] {
  graph g;
  tensor w = g.variable("w", f32, {2});
  tensor n = g.variable("n", f32, {2}, init::zeros(), false);
  tensor m = g.variable("m", f64, {}, init::zeros(), variable_flags{.trainable = false, .metric_state = true});
  return w.info().has(flag_trainable) && !n.info().has(flag_trainable) && m.info().has(flag_metric_state) &&
         !m.info().has(flag_trainable);
}());

// ---- the gradient dispatch: an op declared without a gradient that a gradient reaches is an error
static_assert([] {
  graph g;
  tensor w = g.variable("w", f32, {3});
  tensor a = assign(w, w * 2.0);
  gradients(reduce_sum(a), {w});
  return g.error.view().find("gradients: no gradient rule for 'assign' f32 [3] (built at test_op_table.cpp:") == 0;
}());

// ---- a model with composites: visible in the model view, lowered before planning ----------------
struct composite_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 6, 6, 2});
    tensor c = relu(conv2d(x, g.variable("k", f32, {3, 3, 2, 4}, init::glorot_uniform(1)), g.variable("b", f32, {4}), 1, padding::same));
    tensor p = avg_pool2d(c, 2);  // [?,3,3,4]
    tensor n = batch_norm(p, g.variable("mean", f32, {4}, init::constant(0.1)), g.variable("var", f32, {4}, init::constant(2)),
                          g.variable("beta", f32, {4}), g.variable("gamma", f32, {4}, init::constant(1.5)), 1e-3);
    tensor h = fully_connected(reshape(n, {batch, 36}), g.variable("w", f32, {36, 5}, init::glorot_uniform(2)),
                               g.variable("c", f32, {5}), epilogue_activation::tanh);
    tensor y = log_softmax(h) + softmax(h, 1);
    g.output("y", y);
    auto d = gradients(reduce_sum(y * y), {x});
    g.output("dx", d[0]);
    return g;
  }
};
using composite_p = program<composite_model>;

template <class P, std::size_t N> constexpr int count(const std::array<node, N>& nodes, op o) {
  int c = 0;
  for (const node& n : nodes) c += n.kind == o;
  return c;
}

}  // namespace

TEST_CASE("op_table.composites.model_view_and_lowering") {
  static_assert(composite_p::ok);
  for (op o : {op::conv2d, op::avg_pool2d, op::batch_norm, op::fully_connected, op::log_softmax, op::softmax, op::conv2d_backprop_input}) {
    INFO(name_of(o));
    CHECK(count<composite_p>(composite_p::model_nodes, o) >= 1);  // as written, and differentiated
    CHECK(count<composite_p>(composite_p::nodes, o) == 0);         // lowered before planning
  }
  CHECK(count<composite_p>(composite_p::nodes, op::im2col) >= 1);
  CHECK(count<composite_p>(composite_p::nodes, op::col2im) >= 1);
  const std::string d = describe<composite_p>();
  CHECK(d.find("conv2d (3x3 stride 1 out 6x6 pad 1,1") != std::string::npos);
  CHECK(d.find("fully_connected") != std::string::npos);
  CHECK(d.find("im2col") != std::string::npos);
  CHECK(to_dot_model<composite_p>().find("avg_pool2d") != std::string::npos);
}

// The lowered graph computes what the composites mean: a plain-loop reference of the forward pass.
TEST_CASE("op_table.composites.values") {
  auto ex = compile<cpu>(composite_model{});
  const std::int64_t B = 2;
  std::vector<float> x(std::size_t(B * 72));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.7 * double(i)));
  const auto& out = ex.run({{"x", view(x, {B, 6, 6, 2})}});
  auto k = ex.variable<float>("k").to_vector(), w = ex.variable<float>("w").to_vector();
  std::vector<double> y(std::size_t(B * 5));
  for (std::int64_t b = 0; b < B; ++b) {
    double conv[6][6][4]{};
    for (int p = 0; p < 6; ++p)
      for (int q = 0; q < 6; ++q)
        for (int f = 0; f < 4; ++f) {
          double s = 0;  // bias 0
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
              for (int c = 0; c < 2; ++c) {
                const int r = p + i - 1, s2 = q + j - 1;
                if (r < 0 || r >= 6 || s2 < 0 || s2 >= 6) continue;
                s += double(x[std::size_t(((b * 6 + r) * 6 + s2) * 2 + c)]) * double(k[std::size_t(((i * 3 + j) * 2 + c) * 4 + f)]);
              }
          conv[p][q][f] = s > 0 ? s : 0;
        }
    double h[5]{};
    for (int p = 0; p < 3; ++p)
      for (int q = 0; q < 3; ++q)
        for (int f = 0; f < 4; ++f) {
          const double avg = (conv[2 * p][2 * q][f] + conv[2 * p + 1][2 * q][f] + conv[2 * p][2 * q + 1][f] + conv[2 * p + 1][2 * q + 1][f]) / 4;
          const double bn = (avg - 0.1) / std::sqrt(2 + 1e-3) * 1.5;
          for (int u = 0; u < 5; ++u) h[u] += bn * double(w[std::size_t(((p * 3 + q) * 4 + f) * 5 + u)]);
        }
    double m = -1e300, sum = 0;
    for (double& v : h) v = std::tanh(v), m = std::max(m, v);
    for (double v : h) sum += std::exp(v - m);
    for (int u = 0; u < 5; ++u) {
      const double ls = h[u] - m - std::log(sum);
      y[std::size_t(b * 5 + u)] = ls + std::exp(ls);
    }
  }
  kt::check_values("y", out.get<float>("y"), dims{B, 5}, y, 1e-4, 1e-5);
}
