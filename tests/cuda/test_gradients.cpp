// gradients() on the CUDA backend. Every finite-difference check of tests/test_gradients.cpp and
// tests/test_gradients_nn.cpp, run by the same checker (tests/test_gradients_check.hpp) on the
// same f64 models (tests/gradient_models.hpp) against CUDA executors: unary and binary ops with
// broadcasting, select, casts, reductions (also over the dynamic batch dim), layout ops, gather,
// matmul in every variant, a softmax cross-entropy MLP, second order, and the window ops behind
// conv2d and max_pool2d (im2col/col2im, max_pool/max_pool_grad/max_pool_select, the row-folded
// weight-gradient contraction), also at second order. Then, per model, the CUDA
// analytic gradients against the CPU ones on the same inputs (normalized error, as check_close in
// harness.cuh), also at batch sizes too large for finite differences.
//
// Host code: the executors come from gradients_cuda.cu (nvcc) and gradients_cpu.cpp (g++), one
// translation unit per model. Without a visible GPU, main.cu skips the executable (exit code 77)
// before any test runs.
//
// Built a second time with -DKILN_GRADIENTS_ON_CPU (cuda_gradients_cpu, tests/cuda/meson.build):
// every check against the CPU executors instead, no GPU needed, so that a model, its inputs and
// its tolerances are known to be sound on any machine before the GPU runs them.
#ifdef KILN_GRADIENTS_ON_CPU
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#endif
#include <algorithm>
#include <cmath>
#include <sstream>
#include <tuple>
#include "gradient_executor.hpp"
#include "tests/gradient_models.hpp"

using namespace kiln;
using namespace gradient_models;
using cuda_gradients::on_cpu;
using cuda_gradients::on_cuda;
using gc::check_gradients;
using gc::make;

namespace {

#ifdef KILN_GRADIENTS_ON_CPU
template <class Model> std::unique_ptr<cuda_gradients::executor> on_device() { return on_cpu<Model>(); }
#else
template <class Model> std::unique_ptr<cuda_gradients::executor> on_device() { return on_cuda<Model>(); }
#endif

template <template <dtype> class M> std::unique_ptr<cuda_gradients::executor> gpu() { return on_device<M<f64>>(); }

// On the CPU build (cuda_gradients_cpu) both sides of the GPU-vs-CPU comparison would be CPU
// executors of one program: equal by construction, a check that cannot fail. There it is left
// out: the cases that consist of it are reported as skipped (not passed), and the cases that also
// check gradients against finite differences keep those checks, the independent reference.
#ifdef KILN_GRADIENTS_ON_CPU
constexpr bool comparison_is_vacuous = true;
#define KILN_GPU_ONLY * doctest::skip(true)
#else
constexpr bool comparison_is_vacuous = false;
#define KILN_GPU_ONLY
#endif

// Worst |gpu - cpu| / max(1, largest |cpu| of that output) over the elements of each output:
// both compute in f64, so anything above rounding (different libm, summation order, FMA) is a bug.
constexpr double agreement_tol = 1e-11;

template <template <dtype> class M> void check_agrees_with_cpu(std::vector<gc::input> ins, const std::vector<feed>& extra = {}) {
  if constexpr (comparison_is_vacuous) return;
  auto on_gpu = on_device<M<f64>>();
  auto on_host = on_cpu<M<f64>>();
  const cuda_gradients::outputs& got = gc::run_with(*on_gpu, ins, extra);
  const cuda_gradients::outputs& want = gc::run_with(*on_host, ins, extra);
  REQUIRE(got.names.size() == want.names.size());
  for (const std::string_view name : want.names) {
    INFO("output " << std::string(name));
    const auto w = want.get<double>(name);
    const auto g = got.get<double>(name);
    REQUIRE_MESSAGE(g.shape() == w.shape(), "shape " << kt::dims_text(g.shape()) << ", CPU " << kt::dims_text(w.shape()));
    double scale = 1;
    for (double v : w.flat()) scale = std::max(scale, std::fabs(v));
    double worst = 0;
    std::size_t worst_at = 0;
    for (std::size_t k = 0; k < w.flat().size(); ++k) {
      const double a = g.flat()[k], b = w.flat()[k];
      double err;
      if (std::isnan(a) || std::isnan(b)) err = std::isnan(a) && std::isnan(b) ? 0 : INFINITY;
      else if (std::isinf(a) || std::isinf(b)) err = a == b ? 0 : INFINITY;
      else err = std::fabs(a - b) / scale;
      if (!(err <= worst)) {
        worst = err;
        worst_at = k;
      }
    }
    std::ostringstream where;
    where.precision(17);
    if (!w.flat().empty()) where << " at flat index " << worst_at << ": GPU " << g.flat()[worst_at] << ", CPU " << w.flat()[worst_at];
    CHECK_MESSAGE(worst <= agreement_tol, "worst normalized error " << worst << where.str());
  }
}

}  // namespace

// ---- unary ops ---------------------------------------------------------------------------------------

namespace {
void check_unary(const char* op_name) { check_gradients(*gpu<unary_model>(), unary_inputs(), {}, {op_name}); }
}  // namespace

TEST_CASE("cuda.gradients.elementwise.neg") { check_unary("neg"); }
TEST_CASE("cuda.gradients.elementwise.abs") { check_unary("abs"); }
TEST_CASE("cuda.gradients.elementwise.exp") { check_unary("exp"); }
TEST_CASE("cuda.gradients.elementwise.log") { check_unary("log"); }
TEST_CASE("cuda.gradients.elementwise.sqrt") { check_unary("sqrt"); }
TEST_CASE("cuda.gradients.elementwise.rsqrt") { check_unary("rsqrt"); }
TEST_CASE("cuda.gradients.elementwise.square") { check_unary("square"); }
TEST_CASE("cuda.gradients.elementwise.tanh") { check_unary("tanh"); }
TEST_CASE("cuda.gradients.elementwise.sigmoid") { check_unary("sigmoid"); }
TEST_CASE("cuda.gradients.elementwise.relu") { check_unary("relu"); }
TEST_CASE("cuda.gradients.elementwise.softplus") { check_unary("softplus"); }
TEST_CASE("cuda.gradients.elementwise.sign_is_zero") { check_unary("sign"); }  // d(sign(x) + x) = 1
TEST_CASE("cuda.gradients.elementwise.composition") { check_unary("chain"); }
TEST_CASE("cuda.gradients.agrees_with_cpu.unary" KILN_GPU_ONLY) { check_agrees_with_cpu<unary_model>(unary_inputs()); }

// ---- binary ops with broadcasting, select ------------------------------------------------------------

namespace {
void check_binary(std::vector<std::string> which) { check_gradients(*gpu<binary_model>(), binary_inputs(), {}, std::move(which)); }
}  // namespace

TEST_CASE("cuda.gradients.elementwise.add_broadcast_batch") { check_binary({"add_a", "add_b"}); }    // [?,3] + [3]
TEST_CASE("cuda.gradients.elementwise.sub_broadcast_outer") { check_binary({"sub_a", "sub_b"}); }    // [3,1] - [1,4]
TEST_CASE("cuda.gradients.elementwise.mul_broadcast") { check_binary({"mul_a", "mul_b"}); }          // [3,1] * [1,4]
TEST_CASE("cuda.gradients.elementwise.mul_broadcast_batch") { check_binary({"mulb_a", "mulb_b"}); }  // [?,3] * [3]
TEST_CASE("cuda.gradients.elementwise.mul_same_operand") { check_binary({"muls"}); }                 // x * x
TEST_CASE("cuda.gradients.elementwise.div_broadcast") { check_binary({"div_a", "div_b"}); }
TEST_CASE("cuda.gradients.elementwise.div_scalar_operand") { check_binary({"divs_a", "divs_b"}); }   // [] / [?,4]
TEST_CASE("cuda.gradients.elementwise.pow") { check_binary({"pow_a", "pow_b"}); }
TEST_CASE("cuda.gradients.elementwise.minimum") { check_binary({"min_a", "min_b"}); }
TEST_CASE("cuda.gradients.elementwise.maximum") { check_binary({"max_a", "max_b"}); }
TEST_CASE("cuda.gradients.elementwise.select") { check_binary({"sel_a", "sel_b", "sel_c"}); }  // d_sel_c is zero
TEST_CASE("cuda.gradients.agrees_with_cpu.binary" KILN_GPU_ONLY) { check_agrees_with_cpu<binary_model>(binary_inputs()); }

// ---- casts -------------------------------------------------------------------------------------------

namespace {
// Dyadic values, so that f32 holds them and 3 * (f ± 0.5) exactly (see cast_model).
std::vector<gc::input> cast_inputs() {
  return {{"f", {2, 3}, {0.125, -1.5, 2.25, 0.75, -0.375, 1.0}}, {"n", {2, 3}, {0.5, 1.5, -2.5, 3.5, 0.25, -1.75}}};
}
}  // namespace

TEST_CASE("cuda.gradients.elementwise.cast_float") { check_gradients(*gpu<cast_model>(), cast_inputs(), {}, {"f"}, {0.5, 1e-12}); }

TEST_CASE("cuda.gradients.elementwise.cast_int_path") {
  auto ex = gpu<cast_model>();
  auto ins = cast_inputs();
  check_gradients(*ex, ins, {}, {"n"});
  kt::check_values("d_n", gc::run_with(*ex, ins, {}).get<double>("d_n"), {2, 3}, {0, 1, -2, 3, 0, -1});  // trunc(n)
}

TEST_CASE("cuda.gradients.agrees_with_cpu.cast" KILN_GPU_ONLY) { check_agrees_with_cpu<cast_model>(cast_inputs()); }

// ---- reductions --------------------------------------------------------------------------------------

namespace {
void check_reduce(std::vector<std::string> which) {
  auto ex = gpu<reduce_model>();  // one executor for both batch sizes: its device arena is re-planned
  for (std::int64_t B : {1, 3}) {  // the batch size enters the counts of means over the batch
    INFO("batch " << B);
    check_gradients(*ex, reduce_inputs(B), {}, which);
  }
}
}  // namespace

TEST_CASE("cuda.gradients.reduce.sum_several_axes") { check_reduce({"sum_axes"}); }
TEST_CASE("cuda.gradients.reduce.sum_all_with_batch") { check_reduce({"sum_all"}); }
TEST_CASE("cuda.gradients.reduce.mean_keepdims") { check_reduce({"mean_keep"}); }
TEST_CASE("cuda.gradients.reduce.mean_over_batch") { check_reduce({"mean_batch", "mean_all"}); }
TEST_CASE("cuda.gradients.reduce.max_axis") { check_reduce({"max_axis"}); }
TEST_CASE("cuda.gradients.reduce.max_several_axes") { check_reduce({"max_axes"}); }
TEST_CASE("cuda.gradients.reduce.min_keepdims") { check_reduce({"min_axis"}); }
TEST_CASE("cuda.gradients.reduce.min_over_batch") { check_reduce({"min_batch"}); }

// Ties split the gradient equally: the GPU's max kernel and the backward's equality test must agree.
TEST_CASE("cuda.gradients.reduce.max_ties_split") {
  auto ex = gpu<max_ties_model>();
  std::vector<double> x = {1, 3, 3, 2, 5, 5, 5, -1};
  const std::vector<feed> feeds = {{"x", view(x, {2, 4})}};
  kt::check_values("d_x", ex->run(feeds).get<double>("d_x"), {2, 4}, {0, 0.5, 0.5, 0, 10.0 / 3, 10.0 / 3, 10.0 / 3, 0}, 1e-15);
}

// 37 and 300 rows: reductions over the batch dim take the multi-lane GPU paths that the small
// finite-difference batches do not reach.
TEST_CASE("cuda.gradients.agrees_with_cpu.reduce" KILN_GPU_ONLY) {
  for (std::int64_t B : {1, 3, 37, 300}) {
    INFO("batch " << B);
    check_agrees_with_cpu<reduce_model>(reduce_inputs(B));
  }
}

// ---- layout and indexing -----------------------------------------------------------------------------

namespace {

// The inputs of layout_model at batch B, with gather indices that repeat (their gradients add up).
struct layout_case {
  std::vector<gc::input> ins;
  std::vector<std::int32_t> actions, ids;
  explicit layout_case(std::int64_t B) {
    ins = {make("reshape", {B, 6}, -1, 1, 41),   make("transpose", {2, 3, 4}, -1, 1, 42), make("slice_mid", {B, 5}, -1, 1, 43),
           make("slice_ends", {4, 3}, -1, 1, 44), make("concat_a", {B, 2}, -1, 1, 45),     make("concat_b", {B, 3}, -1, 1, 46),
           make("gather_q", {B, 4}, -1, 1, 47),   make("gather_emb", {5, 3}, -1, 1, 48),   make("gather_p3", {B, 4, 3}, -1, 1, 49)};
    for (std::int64_t b = 0; b < B; ++b) actions.push_back(std::int32_t((b * 3 + 3) % 4));      // 3, 2, 1, 0, 3, ...
    for (std::int64_t k = 0; k < 2 * B; ++k) ids.push_back(std::int32_t((k * k + 1) % 5));       // 1, 2, 0, 0, 2, 1, ...
  }
  std::vector<feed> feeds() const {
    const std::int64_t B = std::int64_t(actions.size());
    return {{"actions", view(actions, {B})}, {"ids", view(ids, {B, 2})}};
  }
};

void check_layout(std::vector<std::string> which) {
  const layout_case c(4);
  check_gradients(*gpu<layout_model>(), c.ins, c.feeds(), std::move(which));
}

}  // namespace

TEST_CASE("cuda.gradients.layout.reshape") { check_layout({"reshape"}); }
TEST_CASE("cuda.gradients.layout.transpose") { check_layout({"transpose"}); }
TEST_CASE("cuda.gradients.layout.slice") { check_layout({"slice_mid", "slice_ends"}); }
TEST_CASE("cuda.gradients.layout.concat") { check_layout({"concat_a", "concat_b"}); }
TEST_CASE("cuda.gradients.indexing.gather_batch_dims_1") { check_layout({"gather_q", "gather_p3"}); }
TEST_CASE("cuda.gradients.indexing.gather_batch_dims_0") { check_layout({"gather_emb"}); }

TEST_CASE("cuda.gradients.agrees_with_cpu.layout" KILN_GPU_ONLY) {
  for (std::int64_t B : {4, 300}) {
    INFO("batch " << B);
    const layout_case c(B);
    check_agrees_with_cpu<layout_model>(c.ins, c.feeds());
  }
}

// ---- matmul ------------------------------------------------------------------------------------------

namespace {

std::vector<gc::input> matmul_inputs(std::int64_t B) {
  return {make("a00", {3, 4}, -1, 1, 51),     make("b00", {4, 2}, -1, 1, 52),     make("a10", {4, 3}, -1, 1, 53),
          make("b10", {4, 2}, -1, 1, 54),     make("a01", {3, 4}, -1, 1, 55),     make("b01", {2, 4}, -1, 1, 56),
          make("a11", {4, 3}, -1, 1, 57),     make("b11", {2, 4}, -1, 1, 58),     make("xd", {B, 3}, -1, 1, 59),
          make("wd", {3, 4}, -1, 1, 60),      make("xt", {B, 3}, -1, 1, 61),      make("wt", {4, 3}, -1, 1, 62),
          make("ba", {2, 3, 4}, -1, 1, 63),   make("bb", {2, 4, 2}, -1, 1, 64),   make("bta", {2, 4, 3}, -1, 1, 65),
          make("btb", {2, 2, 4}, -1, 1, 66),  make("sa", {B, 3, 4}, -1, 1, 67),   make("sb", {4, 2}, -1, 1, 68),
          make("sta", {B, 4, 3}, -1, 1, 69),  make("stb", {2, 4}, -1, 1, 70)};
}

void check_matmul(std::vector<std::string> which) { check_gradients(*gpu<matmul_model>(), matmul_inputs(2), {}, std::move(which)); }

}  // namespace

TEST_CASE("cuda.gradients.matmul.nn") { check_matmul({"a00", "b00"}); }
TEST_CASE("cuda.gradients.matmul.tn") { check_matmul({"a10", "b10"}); }
TEST_CASE("cuda.gradients.matmul.nt") { check_matmul({"a01", "b01"}); }
TEST_CASE("cuda.gradients.matmul.tt") { check_matmul({"a11", "b11"}); }
TEST_CASE("cuda.gradients.matmul.dynamic_batch_rows") { check_matmul({"xd", "wd", "xt", "wt"}); }
TEST_CASE("cuda.gradients.matmul.batched") { check_matmul({"ba", "bb", "bta", "btb"}); }
TEST_CASE("cuda.gradients.matmul.shared_weights") { check_matmul({"sa", "sb", "sta", "stb"}); }

TEST_CASE("cuda.gradients.agrees_with_cpu.matmul" KILN_GPU_ONLY) {
  for (std::int64_t B : {2, 300}) {
    INFO("batch " << B);
    check_agrees_with_cpu<matmul_model>(matmul_inputs(B));
  }
}

// ---- a 2-layer MLP with softmax cross-entropy ----------------------------------------------------------

namespace {

// x at batch B and the four parameters, which live in the variable store (perturbed there).
std::vector<gc::input> mlp_inputs(std::int64_t B) {
  std::vector<gc::input> ins = {make("x", {B, 4}, -1, 1, 71)};
  for (auto [name, d, seed] : {std::tuple{"w1", dims{4, 5}, 72}, {"b1", dims{5}, 73}, {"w2", dims{5, 3}, 74}, {"b2", dims{3}, 75}}) {
    ins.push_back(make(name, d, -1, 1, std::uint64_t(seed)));
    ins.back().variable = true;
  }
  return ins;
}
std::vector<std::int32_t> mlp_labels(std::int64_t B) {
  std::vector<std::int32_t> labels;
  for (std::int64_t b = 0; b < B; ++b) labels.push_back(std::int32_t((b * 2 + 1) % 3));
  return labels;
}

}  // namespace

TEST_CASE("cuda.gradients.nn.mlp_softmax_cross_entropy") {
  auto ex = gpu<mlp_model>();
  for (std::int64_t B : {3, 5}) {  // the mean over the batch divides by the fed batch
    INFO("batch " << B);
    const auto labels = mlp_labels(B);
    check_gradients(*ex, mlp_inputs(B), {{"labels", view(labels, {B})}});
  }
}

TEST_CASE("cuda.gradients.agrees_with_cpu.mlp" KILN_GPU_ONLY) {
  for (std::int64_t B : {3, 300}) {
    INFO("batch " << B);
    const auto labels = mlp_labels(B);
    check_agrees_with_cpu<mlp_model>(mlp_inputs(B), {{"labels", view(labels, {B})}});
  }
}

// ---- second order ------------------------------------------------------------------------------------

namespace {

std::vector<gc::input> hvp_inputs() {
  return {make("x", {4, 3}, -1, 1, 81),   make("w1", {3, 4}, -1, 1, 82), make("b1", {4}, -0.5, 0.5, 83),
          make("w2", {4, 3}, -1, 1, 84),  make("b2", {3}, -0.5, 0.5, 85), make("v1", {3, 4}, -1, 1, 86),
          make("vb1", {4}, -1, 1, 87),    make("v2", {4, 3}, -1, 1, 88),  make("vb2", {3}, -1, 1, 89)};
}
const std::vector<std::int32_t> hvp_labels = {2, 0, 1, 2};

}  // namespace

TEST_CASE("cuda.gradients.second_order.hessian_vector_product") {
  auto ex = gpu<hvp_model>();
  auto ins = hvp_inputs();
  const std::vector<feed> extra = {{"labels", view(hvp_labels, {4})}};
  // d (g . v) / dW = H v, element by element
  check_gradients(*ex, ins, extra, {"w1", "b1", "w2", "b2"});
  // and as a directional derivative of the gradient itself: H v = (g(W + h v) - g(W - h v)) / 2h
  const char* params[] = {"w1", "b1", "w2", "b2"};
  const char* dirs[] = {"v1", "vb1", "v2", "vb2"};
  auto input = [](std::vector<gc::input>& v, std::string_view n) -> gc::input& {
    return *std::find_if(v.begin(), v.end(), [&](const gc::input& in) { return in.name == n; });
  };
  const double h = 1e-6;
  auto gradient_at = [&](double step) {
    auto moved = ins;
    for (int p = 0; p < 4; ++p) {
      auto& w = input(moved, params[p]);
      const auto& v = input(ins, dirs[p]);
      for (std::size_t k = 0; k < w.values.size(); ++k) w.values[k] += step * v.values[k];
    }
    std::vector<std::vector<double>> gs;
    const auto& out = gc::run_with(*ex, moved, extra);
    for (const char* p : params) gs.push_back(out.get<double>(std::string("g_") + p).to_vector());
    return gs;
  };
  const auto gp = gradient_at(h), gm = gradient_at(-h);
  const auto& out = gc::run_with(*ex, ins, extra);
  double scale = 1;
  for (const char* p : params)
    for (double x : out.get<double>(std::string("d_") + p).flat()) scale = std::max(scale, std::fabs(x));
  bool nonzero = false;
  for (int p = 0; p < 4; ++p) {
    std::vector<double> want(gp[std::size_t(p)].size()), bound(want.size(), 1e-6 * scale);
    for (std::size_t k = 0; k < want.size(); ++k) {
      want[k] = (gp[std::size_t(p)][k] - gm[std::size_t(p)][k]) / (2 * h);
      nonzero = nonzero || std::fabs(want[k]) > 1e-3;
    }
    kt::check_bounded(params[p], out.get<double>(std::string("d_") + params[p]), input(ins, params[p]).shape, want, bound);
  }
  CHECK(nonzero);
}

TEST_CASE("cuda.gradients.second_order.nested_elementwise") {
  check_gradients(*gpu<nested_elementwise_model>(), {make("x", {3, 3}, -1.5, 1.5, 91), make("w", {3}, -1, 1, 92)});
}

TEST_CASE("cuda.gradients.agrees_with_cpu.second_order" KILN_GPU_ONLY) {
  const std::vector<feed> extra = {{"labels", view(hvp_labels, {4})}};
  check_agrees_with_cpu<hvp_model>(hvp_inputs(), extra);
  check_agrees_with_cpu<nested_elementwise_model>({make("x", {300, 3}, -1.5, 1.5, 93), make("w", {3}, -1, 1, 94)});
}

// ---- windows: conv2d and max_pool2d ------------------------------------------------------------------

namespace {
void check_conv2d(std::vector<std::string> which) { check_gradients(*gpu<conv2d_model>(), conv2d_inputs(2), {}, std::move(which)); }
}  // namespace

TEST_CASE("cuda.gradients.window.conv2d_valid") { check_conv2d({"xv", "wv"}); }
TEST_CASE("cuda.gradients.window.conv2d_same_stride2_bias") { check_conv2d({"xs", "ws", "bs"}); }
TEST_CASE("cuda.gradients.window.conv2d_valid_stride2") { check_conv2d({"x3", "w3"}); }
TEST_CASE("cuda.gradients.window.conv2d_pointwise") { check_conv2d({"x1", "w1"}); }
TEST_CASE("cuda.gradients.window.max_pool2d") { check_gradients(*gpu<max_pool_model>(), max_pool_inputs(2)); }

TEST_CASE("cuda.gradients.second_order.conv_max_pool") {
  const window_hvp_directions dirs(2);
  check_gradients(*gpu<window_hvp_model>(), window_hvp_inputs(2), dirs.feeds());
}

// 64 images: the weight gradient folds 64·Ho·Wo rows into one GEMM.
TEST_CASE("cuda.gradients.agrees_with_cpu.window" KILN_GPU_ONLY) {
  for (std::int64_t B : {1, 3, 64}) {
    INFO("batch " << B);
    check_agrees_with_cpu<conv2d_model>(conv2d_inputs(B));
    check_agrees_with_cpu<max_pool_model>(max_pool_inputs(B));
    const window_hvp_directions dirs(B);
    check_agrees_with_cpu<window_hvp_model>(window_hvp_inputs(B), dirs.feeds());
  }
}
