// gradients(), part 1: the vector-Jacobian products of the elementwise ops (a composition of the
// unary ones, binary ops with broadcasting, select, casts) and of the reductions, each checked
// against central finite differences on f64 graphs (tests/test_gradients_check.hpp);
// stop_gradient and the documented zero gradient of an unrelated x. Layout, indexing, matmul, an
// MLP and second order are in test_gradients_nn.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_gradients_check.hpp"
#include "gradient_models.hpp"

using namespace kiln;
using namespace gradient_models;
using gc::check_gradients;
using gc::make;

namespace {

// ---- unary ops: one input per op, y = sum_op weighted(op(x_op)) -----------------------------------

auto& unary_executor() {
  static auto ex = compile<cpu>(unary_model<f64>{});
  return ex;
}

void check_unary(const char* op_name) { check_gradients(unary_executor(), unary_inputs(), {}, {op_name}); }

}  // namespace

// Each unary op's own gradient is checked by the test registry (tests/op_cases.hpp,
// test_op_cases.cpp); here, their composition with batch-shaped inputs.
TEST_CASE("gradients.elementwise.composition") { check_unary("chain"); }

// ---- binary ops with broadcasting ---------------------------------------------------------------

namespace {

auto& binary_executor() {
  static auto ex = compile<cpu>(binary_model<f64>{});
  return ex;
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

auto& reduce_executor() {
  static auto ex = compile<cpu>(reduce_model<f64>{});
  return ex;
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
  auto ex = compile<cpu>(max_ties_model<f64>{});
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
