// gradients(), part 1: the vector-Jacobian products of the elementwise ops (unary, binary with
// broadcasting, select, casts) and of the reductions, each checked against central finite
// differences on f64 graphs (tests/test_gradients_check.hpp); stop_gradient and the documented
// zero gradient of an unrelated x. Layout, indexing, matmul, an MLP and second order are in
// test_gradients_nn.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_gradients_check.hpp"

using namespace kiln;
using gc::check_gradients;
using gc::make;
using gc::weighted;

namespace {

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

auto& unary_executor() {
  static auto ex = compile<cpu>(unary_model<f64>{});
  return ex;
}

// Every input of the unary model, with a domain that suits its op (positive for log/sqrt/rsqrt,
// away from the kink at 0 for abs/relu/sign).
std::vector<gc::input> unary_inputs() {
  std::vector<gc::input> v;
  const char* names[] = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "square", "tanh", "sigmoid", "relu", "softplus", "sign", "chain"};
  std::uint64_t seed = 10;
  for (const char* n : names) {
    const std::string s = n;
    if (s == "log" || s == "sqrt" || s == "rsqrt") v.push_back(make(s, {2, 3}, 0.5, 2.0, seed++));
    else v.push_back(make(s, {2, 3}, -2.0, 2.0, seed++, 0.2));
  }
  return v;
}

void check_unary(const char* op_name) { check_gradients(unary_executor(), unary_inputs(), {}, {op_name}); }

}  // namespace

TEST_CASE("gradients.elementwise.neg") { check_unary("neg"); }
TEST_CASE("gradients.elementwise.abs") { check_unary("abs"); }
TEST_CASE("gradients.elementwise.exp") { check_unary("exp"); }
TEST_CASE("gradients.elementwise.log") { check_unary("log"); }
TEST_CASE("gradients.elementwise.sqrt") { check_unary("sqrt"); }
TEST_CASE("gradients.elementwise.rsqrt") { check_unary("rsqrt"); }
TEST_CASE("gradients.elementwise.square") { check_unary("square"); }
TEST_CASE("gradients.elementwise.tanh") { check_unary("tanh"); }
TEST_CASE("gradients.elementwise.sigmoid") { check_unary("sigmoid"); }
TEST_CASE("gradients.elementwise.relu") { check_unary("relu"); }
TEST_CASE("gradients.elementwise.softplus") { check_unary("softplus"); }
TEST_CASE("gradients.elementwise.sign_is_zero") { check_unary("sign"); }  // d(sign(x) + x) = 1
TEST_CASE("gradients.elementwise.composition") { check_unary("chain"); }

// ---- binary ops with broadcasting ---------------------------------------------------------------

namespace {

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

auto& binary_executor() {
  static auto ex = compile<cpu>(binary_model<f64>{});
  return ex;
}

std::vector<gc::input> binary_inputs() {
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

void check_binary(std::vector<std::string> which) { check_gradients(binary_executor(), binary_inputs(), {}, std::move(which)); }

}  // namespace

TEST_CASE("gradients.elementwise.add_broadcast_batch") { check_binary({"add_a", "add_b"}); }    // [?,3] + [3]
TEST_CASE("gradients.elementwise.sub_broadcast_outer") { check_binary({"sub_a", "sub_b"}); }    // [3,1] - [1,4]
TEST_CASE("gradients.elementwise.mul_broadcast") { check_binary({"mul_a", "mul_b"}); }          // [3,1] * [1,4]
TEST_CASE("gradients.elementwise.mul_broadcast_batch") { check_binary({"mulb_a", "mulb_b"}); }  // [?,3] * [3]
TEST_CASE("gradients.elementwise.mul_same_operand") { check_binary({"muls"}); }                 // x * x
TEST_CASE("gradients.elementwise.div_broadcast") { check_binary({"div_a", "div_b"}); }
TEST_CASE("gradients.elementwise.div_scalar_operand") { check_binary({"divs_a", "divs_b"}); }   // [] / [?,4]
TEST_CASE("gradients.elementwise.pow") { check_binary({"pow_a", "pow_b"}); }
TEST_CASE("gradients.elementwise.minimum") { check_binary({"min_a", "min_b"}); }
TEST_CASE("gradients.elementwise.maximum") { check_binary({"max_a", "max_b"}); }
TEST_CASE("gradients.elementwise.select") { check_binary({"sel_a", "sel_b", "sel_c"}); }  // d_sel_c is zero

// ---- casts ---------------------------------------------------------------------------------------

namespace {

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

}  // namespace

TEST_CASE("gradients.elementwise.cast_float") {
  auto ex = compile<cpu>(cast_model<f64>{});
  std::vector<gc::input> ins = {{"f", {2, 3}, {0.125, -1.5, 2.25, 0.75, -0.375, 1.0}}, {"n", {2, 3}, {0.5, 1.5, -2.5, 3.5, 0.25, -1.75}}};
  check_gradients(ex, ins, {}, {"f"}, {0.5, 1e-12});
}

TEST_CASE("gradients.elementwise.cast_int_path") {
  auto ex = compile<cpu>(cast_model<f64>{});
  std::vector<gc::input> ins = {{"f", {2, 3}, {0.125, -1.5, 2.25, 0.75, -0.375, 1.0}}, {"n", {2, 3}, {0.5, 1.5, -2.5, 3.5, 0.25, -1.75}}};
  check_gradients(ex, ins, {}, {"n"});
  // and the values themselves: trunc(n), computed here
  auto d = gc::run_with(ex, ins, {}).get<double>("d_n");
  kt::check_values("d_n", d, {2, 3}, {0, 1, -2, 3, 0, -1});
}

// ---- reductions ----------------------------------------------------------------------------------

namespace {

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

auto& reduce_executor() {
  static auto ex = compile<cpu>(reduce_model<f64>{});
  return ex;
}

std::vector<gc::input> reduce_inputs(std::int64_t B) {
  return {make("sum_axes", {2, 3, 4}, -1, 1, 31), make("sum_all", {B, 3}, -1, 1, 32),
          make("mean_keep", {2, 3, 4}, -1, 1, 33), make("mean_batch", {B, 3}, -1, 1, 34),
          make("mean_all", {B, 2, 2}, -1, 1, 35), make("max_axis", {B, 4}, -1, 1, 36),
          make("max_axes", {2, 3, 4}, -1, 1, 37), make("min_axis", {3, 4}, -1, 1, 38),
          make("min_batch", {B, 3}, -1, 1, 39)};
}

void check_reduce(std::vector<std::string> which) {
  for (std::int64_t B : {1, 3}) {  // the batch size enters the counts of means over the batch
    INFO("batch " << B);
    check_gradients(reduce_executor(), reduce_inputs(B), {}, which);
  }
}

}  // namespace

TEST_CASE("gradients.reduce.sum_several_axes") { check_reduce({"sum_axes"}); }
TEST_CASE("gradients.reduce.sum_all_with_batch") { check_reduce({"sum_all"}); }
TEST_CASE("gradients.reduce.mean_keepdims") { check_reduce({"mean_keep"}); }
TEST_CASE("gradients.reduce.mean_over_batch") { check_reduce({"mean_batch", "mean_all"}); }
TEST_CASE("gradients.reduce.max_axis") { check_reduce({"max_axis"}); }
TEST_CASE("gradients.reduce.max_several_axes") { check_reduce({"max_axes"}); }
TEST_CASE("gradients.reduce.min_keepdims") { check_reduce({"min_axis"}); }
TEST_CASE("gradients.reduce.min_over_batch") { check_reduce({"min_batch"}); }

// Ties are not differentiable; the documented convention splits the gradient equally among them.
TEST_CASE("gradients.reduce.max_ties_split") {
  static constexpr auto model = [] {
    graph g;
    tensor x = g.placeholder("x", f64, {2, 4});
    g.output("d_x", gradient(reduce_sum(reduce_max(x, 1) * g.constant({1.0, 10.0}, f64, {2})), x));
    return g;
  };
  auto ex = compile<cpu>(model);
  std::vector<double> x = {1, 3, 3, 2, 5, 5, 5, -1};
  kt::check_values("d_x", ex.run({{"x", view(x, {2, 4})}}).get<double>("d_x"), {2, 4},
                   {0, 0.5, 0.5, 0, 10.0 / 3, 10.0 / 3, 10.0 / 3, 0}, 1e-15);
}

// ---- stop_gradient and unrelated xs ---------------------------------------------------------------

TEST_CASE("gradients.stop_gradient") {
  static constexpr auto model = [] {
    graph g;
    tensor x = g.placeholder("x", f64, {batch, 3});
    tensor u = g.placeholder("u", f64, {2});
    tensor s = stop_gradient(x);
    auto [dx, du] = gradients(reduce_sum(x * s), {x, u});
    g.output("s", s);
    g.output("d_x", dx);   // x, not 2x: s is a constant
    g.output("d_u", du);   // y does not depend on u: a zeros tensor of u's shape
    g.output("d_s", gradient(reduce_sum(x * s), s));  // gradients w.r.t. the stopped tensor itself
    return g;
  };
  using P = decltype(compile<cpu>(model))::program_type;
  // stop_gradient is a free alias, like reshape: no group computes it
  int groups_with_copy = 0;
  for (int gi = 0; gi < P::plan.n_groups; ++gi) groups_with_copy += P::plan.groups[std::size_t(gi)].kind == group_kind::layout;
  CHECK(groups_with_copy == 0);
  auto ex = compile<cpu>(model);
  std::vector<double> x = {0.5, -1, 2, 3, -0.25, 1.5}, u = {1, 2};
  const auto& out = ex.run({{"x", view(x, {2, 3})}, {"u", view(u, {2})}});
  kt::check_values("s", out.get<double>("s"), {2, 3}, x);
  kt::check_values("d_x", out.get<double>("d_x"), {2, 3}, x);
  kt::check_values("d_u", out.get<double>("d_u"), {2}, {0, 0});
  kt::check_values("d_s", out.get<double>("d_s"), {2, 3}, x);
}

// f32 models differentiate too (the test models above are templates on the dtype).
TEST_CASE("gradients.f32_model_compiles_and_agrees") {
  auto ex32 = compile<cpu>(unary_model<f32>{});
  auto ins = unary_inputs();
  std::vector<std::vector<float>> v32;
  std::vector<feed> feeds;
  for (auto& in : ins) v32.emplace_back(in.values.begin(), in.values.end());
  for (std::size_t i = 0; i < ins.size(); ++i) feeds.push_back({ins[i].name, view(v32[i].data(), ins[i].shape)});
  const auto& out32 = ex32.run(std::span<const feed>(feeds));
  const auto& out64 = gc::run_with(unary_executor(), ins, {});
  for (auto& in : ins) {
    auto a = out32.get<float>("d_" + in.name);
    auto b = out64.get<double>("d_" + in.name);
    std::vector<double> want(b.flat().begin(), b.flat().end());
    kt::check_values(in.name.c_str(), a, in.shape, want, 1e-4, 1e-4);
  }
}
