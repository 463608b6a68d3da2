// minimize() semantics (variable selection, non-trainable and independent variables, param groups
// with coupled gradients, gradient transforms with state, iteration counters and their names,
// graph errors), schedules evaluated at every step, an f32 case, the plan of an Adam step and
// allocation-free steps; references are f64 loops from the published formulas.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <atomic>
#include <cstdlib>
#include <new>
#include <span>
#include "test_optimizers_reference.hpp"
#include "test_util.hpp"

#include "allocation_counter.hpp"  // g_allocations

using namespace kiln;
using namespace ref;

namespace {
template <class T, class Ex> tensor_view<const T> read(Ex& ex, std::string_view name) {
  const tensor_view<T> v = ex.template variable<T>(name);
  return tensor_view<const T>(v.data(), v.shape());
}
}  // namespace

// ---- schedules evaluated directly at every step from 0 to 40 ---------------------------------------------

namespace {

struct schedule_model {
  constexpr graph operator()() const {
    graph g;
    tensor step = g.placeholder("step", i64, {});
    g.output("exponential", schedules::exponential_decay(0.5, 7, 0.3).at(step));
    g.output("exponential_staircase", schedules::exponential_decay(0.5, 7, 0.3, true).at(step));
    g.output("inverse_time", schedules::inverse_time_decay(0.5, 4, 1.5).at(step));
    g.output("inverse_time_staircase", schedules::inverse_time_decay(0.5, 4, 1.5, true).at(step));
    g.output("polynomial", schedules::polynomial_decay(0.5, 25, 0.05, 0.5).at(step));
    g.output("polynomial_default", schedules::polynomial_decay(0.5, 25).at(step));
    g.output("cosine", schedules::cosine_decay(0.5, 30).at(step));
    g.output("cosine_alpha", schedules::cosine_decay(2.0, 17.5, 0.25).at(step));
    g.output("piecewise", schedules::piecewise_constant({3, 10, 11, 20}, {1.0, 0.5, 0.25, 0.125, 0.0625}).at(step));
    g.output("warmup_constant", schedules::linear_warmup(0.3, 5).at(step));
    g.output("warmup_piecewise", schedules::linear_warmup(schedules::piecewise_constant({4}, {1.0, 0.1}), 3).at(step));
    return g;
  }
};

}  // namespace

TEST_CASE("schedules.values_at_every_step") {
  auto ex = compile<cpu>(schedule_model{});
  for (int s = 0; s <= 40; ++s) {
    const std::int64_t step = s;
    const auto& out = ex.run({{"step", view(&step, {})}});
    INFO("step " << s);
    auto value = [&](const char* name) { return out.get<double>(name).item(); };
    CHECK(kt::close(value("exponential"), exponential_ref(s, 0.5, 7, 0.3, false), 1e-14, 0));
    CHECK(kt::close(value("exponential_staircase"), exponential_ref(s, 0.5, 7, 0.3, true), 1e-14, 0));
    CHECK(kt::close(value("inverse_time"), inverse_time_ref(s, 0.5, 4, 1.5, false), 1e-14, 0));
    CHECK(kt::close(value("inverse_time_staircase"), inverse_time_ref(s, 0.5, 4, 1.5, true), 1e-14, 0));
    CHECK(kt::close(value("polynomial"), polynomial_ref(s, 0.5, 25, 0.05, 0.5), 1e-14, 0));
    CHECK(kt::close(value("polynomial_default"), polynomial_ref(s, 0.5, 25, 0.0001, 1.0), 1e-14, 0));
    CHECK(kt::close(value("cosine"), cosine_ref(s, 0.5, 30, 0), 1e-13, 1e-16));
    CHECK(kt::close(value("cosine_alpha"), cosine_ref(s, 2.0, 17.5, 0.25), 1e-13, 0));
    CHECK(value("piecewise") == piecewise_ref(s, {3, 10, 11, 20}, {1.0, 0.5, 0.25, 0.125, 0.0625}));
    CHECK(kt::close(value("warmup_constant"), s < 5 ? 0.3 * s / 5 : 0.3, 1e-15, 0));
    CHECK(kt::close(value("warmup_piecewise"), s < 3 ? 1.0 * s / 3 : piecewise_ref(s - 3, {4}, {1.0, 0.1}), 1e-15, 0));
  }
}

TEST_CASE("schedules.cosine_decay.end_is_exact") {
  auto ex = compile<cpu>(schedule_model{});
  const std::int64_t step = 30;
  CHECK(ex.run({{"step", view(&step, {})}}).get<double>("cosine").item() == 0.0);
}

// ---- variable selection ----------------------------------------------------------------------------------

namespace {

// Two losses, two minimize calls, both told to skip variables their loss does not depend on
// (unused_variables::skip; the default is a graph error, see minimize.unused_variable_is_an_error):
// - the first call ({}: every trainable variable) must skip w2 (loss_1 does not depend on it),
//   u (nothing depends on it) and the non-trainable f and the integer counter k;
// - the second names w2, f and u explicitly: f is skipped as non-trainable, u as independent.
struct selection_model {
  constexpr graph operator()() const {
    graph g;
    tensor w1 = g.variable("w1", f64, {3}, {1.0, -2.0, 0.5});
    tensor w2 = g.variable("w2", f64, {2}, {3.0, -1.0});
    tensor f = g.variable("f", f64, {3}, {0.25, 0.5, -0.75}, /*trainable=*/false);
    tensor u = g.variable("u", f64, {2}, {7.0, 8.0});
    tensor k = g.variable("k", i64, {}, init::constant(4));  // trainable by default, but an integer
    tensor loss_1 = reduce_sum(square(w1 - f)) + cast(k, f64) * reduce_sum(stop_gradient(u));
    tensor loss_2 = reduce_sum(square(w2 - reduce_sum(f)));
    g.output("loss_1", loss_1);  // keeps u and k live, so they are in the store to be checked
    g.output("step_1", minimize(sgd{.learning_rate = 0.1, .momentum = 0.9}, loss_1, {}, unused_variables::skip));
    g.output("step_2", minimize(sgd{.learning_rate = 0.2, .momentum = 0.5, .name = "second"}, loss_2, {w2, f, u}, unused_variables::skip));
    return g;
  }
};

}  // namespace

TEST_CASE("minimize.non_trainable_untouched") {
  auto ex = compile<cpu>(selection_model{});
  state w1{{1.0, -2.0, 0.5}, {}}, w2{{3.0, -1.0}, {}};
  const vec f = {0.25, 0.5, -0.75};
  const double f_sum = 0.0;
  const update_fn first = sgd_ref(constant(0.1), 0.9), second = sgd_ref(constant(0.2), 0.5);
  for (int s = 0; s < 6; ++s) {
    const auto& out = ex.run();
    CHECK(out.get<std::int64_t>("step_1").item() == s + 1);
    CHECK(out.get<std::int64_t>("step_2").item() == s + 1);
    vec g1(3), g2(2);
    double loss_1 = 4 * (7.0 + 8.0);
    for (int i = 0; i < 3; ++i) loss_1 += std::pow(w1.w[std::size_t(i)] - f[std::size_t(i)], 2);
    CHECK(kt::close(out.get<double>("loss_1").item(), loss_1, 1e-14, 0));
    for (int i = 0; i < 3; ++i) g1[std::size_t(i)] = 2 * (w1.w[std::size_t(i)] - f[std::size_t(i)]);
    for (int i = 0; i < 2; ++i) g2[std::size_t(i)] = 2 * (w2.w[std::size_t(i)] - f_sum);
    first(w1, g1, s);
    second(w2, g2, s);
    kt::check_values<double>("w1", read<double>(ex, "w1"), {3}, w1.w, 1e-13, 1e-15);
    kt::check_values<double>("w1/momentum", read<double>(ex, "w1/momentum"), {3}, w1.slot.at("momentum"), 1e-13, 1e-15);
    kt::check_values<double>("w2", read<double>(ex, "w2"), {2}, w2.w, 1e-13, 1e-15);
    kt::check_values<double>("w2/momentum", read<double>(ex, "w2/momentum"), {2}, w2.slot.at("momentum"), 1e-13, 1e-15);
  }
  kt::check_values<double>("f", read<double>(ex, "f"), {3}, f);
  kt::check_values<double>("u", read<double>(ex, "u"), {2}, {7.0, 8.0});
  CHECK(ex.variable<std::int64_t>("k").item() == 4);
  CHECK(ex.variable<std::int64_t>("optimizer/iterations").item() == 6);
  CHECK(ex.variable<std::int64_t>("second/iterations").item() == 6);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < ex.vars().size(); ++i) names.push_back(ex.vars()[i].name);
  std::sort(names.begin(), names.end());
  // no slots for f, u, k: skipped variables cost nothing
  CHECK(names == std::vector<std::string>{"f", "k", "optimizer/iterations", "second/iterations", "u", "w1", "w1/momentum", "w2",
                          "w2/momentum"});
  for (const char* n : {"optimizer/iterations", "w1/momentum", "w2/momentum"}) {
    INFO(n);
    CHECK_FALSE(ex.vars().at(n).trainable);
  }
}

// ---- param groups with coupled gradients, through placeholders --------------------------------------------

namespace {

// Linear regression, loss = mean((x w + b - y)^2): w and b are coupled through the residual, so
// each group must see the gradient at the values from before the step.
template <dtype T> struct regression_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, 3});
    tensor y = g.placeholder("y", T, {batch, 1});
    tensor w = g.variable("w", T, {3, 1}, init::zeros());
    tensor b = g.variable("b", T, {1}, init::constant(0.5));
    tensor loss = reduce_mean(square(matmul(x, w) + b - y));
    g.output("loss", loss);
    if constexpr (T == f64)
      g.output("step", minimize(loss, param_group{adam{.learning_rate = 0.05, .amsgrad = true}, {w}},
                param_group{sgd{.learning_rate = 0.1, .momentum = 0.5}, {b}}));
    else
      g.output("step", minimize(adam{.learning_rate = 0.01}, loss));
    return g;
  }
};

struct regression_data {
  std::vector<double> x, y;
};
regression_data regression_batch(int step, std::int64_t rows) {
  regression_data d;
  d.x = kt::uniform<double>(std::size_t(rows * 3), -2, 2, 100 + std::uint64_t(step));
  const auto noise = kt::uniform<double>(std::size_t(rows), -0.1, 0.1, 200 + std::uint64_t(step));
  for (std::int64_t i = 0; i < rows; ++i)
    d.y.push_back(1.5 * d.x[std::size_t(i * 3)] - 2.0 * d.x[std::size_t(i * 3 + 1)] + 0.7 * d.x[std::size_t(i * 3 + 2)] + 0.3 +
                  noise[std::size_t(i)]);
  return d;
}

// loss and gradients of mean((x w + b - y)^2) at (w, b)
double regression_gradients(const regression_data& d, std::int64_t rows, const vec& w, double b, vec& dw, double& db) {
  dw.assign(3, 0);
  db = 0;
  double loss = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* xi = &d.x[std::size_t(i * 3)];
    const double r = xi[0] * w[0] + xi[1] * w[1] + xi[2] * w[2] + b - d.y[std::size_t(i)];
    loss += r * r / double(rows);
    for (int j = 0; j < 3; ++j) dw[std::size_t(j)] += 2 * r * xi[j] / double(rows);
    db += 2 * r / double(rows);
  }
  return loss;
}

}  // namespace

TEST_CASE("minimize.param_groups.coupled_gradients") {
  auto ex = compile<cpu>(regression_model<f64>{});
  state w{{0, 0, 0}, {}}, b{{0.5}, {}};
  const update_fn adam_w = adam_ref(constant(0.05), 0.9, 0.999, 1e-7, true), sgd_b = sgd_ref(constant(0.1), 0.5);
  for (int s = 0; s < 12; ++s) {
    const std::int64_t rows = 5 + s % 4;  // the batch size changes between steps
    const regression_data d = regression_batch(s, rows);
    const auto& out = ex.run({{"x", view(d.x, {rows, 3})}, {"y", view(d.y, {rows, 1})}});
    vec dw;
    double db;
    const double loss = regression_gradients(d, rows, w.w, b.w[0], dw, db);
    INFO("step " << s);
    CHECK(kt::close(out.get<double>("loss").item(), loss, 1e-12, 0));
    CHECK(out.get<std::int64_t>("step").item() == s + 1);
    adam_w(w, dw, s);
    sgd_b(b, {db}, s);
    kt::check_values<double>("w", read<double>(ex, "w"), {3, 1}, w.w, 1e-11, 1e-13);
    kt::check_values<double>("w/vhat", read<double>(ex, "w/vhat"), {3, 1}, w.slot.at("vhat"), 1e-11, 1e-13);
    kt::check_values<double>("b", read<double>(ex, "b"), {1}, b.w, 1e-11, 1e-13);
    kt::check_values<double>("b/momentum", read<double>(ex, "b/momentum"), {1}, b.slot.at("momentum"), 1e-11, 1e-13);
  }
}

TEST_CASE("minimize.f32.adam_linear_regression") {
  auto ex = compile<cpu>(regression_model<f32>{});
  state w{{0, 0, 0}, {}}, b{{0.5}, {}};
  const update_fn adam_wb = adam_ref(constant(0.01), 0.9, 0.999, 1e-7, false);
  const std::int64_t rows = 16;
  for (int s = 0; s < 10; ++s) {
    regression_data d = regression_batch(s, rows);
    d.x = kt::rounded<float>(d.x);  // the values the f32 graph sees
    d.y = kt::rounded<float>(d.y);
    const std::vector<float> xf = kt::as<float>(d.x), yf = kt::as<float>(d.y);
    ex.run({{"x", view(xf, {rows, 3})}, {"y", view(yf, {rows, 1})}});
    vec dw;
    double db;
    regression_gradients(d, rows, w.w, b.w[0], dw, db);
    adam_wb(w, dw, s);
    adam_wb(b, {db}, s);
  }
  kt::check_values<float>("w", read<float>(ex, "w"), {3, 1}, w.w, 2e-4, 1e-6);
  kt::check_values<float>("b", read<float>(ex, "b"), {1}, b.w, 2e-4, 1e-6);
  kt::check_values<float>("w/m", read<float>(ex, "w/m"), {3, 1}, w.slot.at("m"), 2e-4, 1e-6);
  kt::check_values<float>("w/v", read<float>(ex, "w/v"), {3, 1}, w.slot.at("v"), 2e-4, 1e-7);
}

// ---- gradient transforms (hooks) ----------------------------------------------------------------------------

namespace {

// Layer-wise gradient normalization: each gradient divided by a running mean of its own L2 norm,
// kept in a state variable `<variable>/grad_norm`.
struct normalize_by_running_norm {
  double decay = 0.9;
  constexpr void operator()(graph& g, std::span<tensor> grads, std::span<const tensor> vars) const {
    for (std::size_t i = 0; i < grads.size(); ++i) {
      const node v = vars[i].info();
      name_text n = v.name;
      n.append("/grad_norm");
      tensor avg = g.variable(n.view(), v.type, {}, init::zeros(), /*trainable=*/false);
      tensor norm = sqrt(reduce_sum(square(grads[i])));
      tensor avg_new = assign(avg, avg * decay + norm * (1 - decay));
      grads[i] = grads[i] / avg_new;
    }
  }
};

struct hook_model {
  constexpr graph operator()() const {
    graph g;
    tensor c = g.constant({0.5, 1.0, 1.5, 2.0, 0.75, 1.25, 1.75, 0.6, 0.9, 1.1, 1.3, 1.6}, f64, {3, 4});
    tensor w = g.variable("w", f64, {3, 4}, init::arange(-1, 0.25));
    tensor b = g.variable("b", f64, {4}, init::arange(2, -0.5));
    tensor h = g.variable("h", f64, {2}, {1.0, -1.0});
    tensor loss = reduce_sum(c * square(w)) + reduce_sum(square(b - 1.0)) + reduce_sum(square(h));
    // the hook runs before clipping: normalized gradients (norm 10 on the first step) are clipped to 5
    g.output("step", minimize(loss, param_group{sgd{.learning_rate = 0.1, .clipnorm = 5}, {w, b}, normalize_by_running_norm{}},
              param_group{sgd{.learning_rate = 0.1}, {h},
                          [](graph&, std::span<tensor> grads, std::span<const tensor>) {
                            for (tensor& d : grads) d = d * -0.5;  // a stateless lambda: ascent at half rate
                          }}));
    return g;
  }
};

}  // namespace

TEST_CASE("minimize.hook.stateful_before_clipping") {
  auto ex = compile<cpu>(hook_model{});
  const vec c = {0.5, 1.0, 1.5, 2.0, 0.75, 1.25, 1.75, 0.6, 0.9, 1.1, 1.3, 1.6};
  vec w(12), b(4), h = {1.0, -1.0};
  for (int i = 0; i < 12; ++i) w[std::size_t(i)] = -1 + 0.25 * i;
  for (int i = 0; i < 4; ++i) b[std::size_t(i)] = 2 - 0.5 * i;
  double avg_w = 0, avg_b = 0;
  int clipped = 0, unclipped = 0;
  for (int s = 0; s < 10; ++s) {
    ex.run();
    vec gw(12), gb(4), gh(2);
    for (std::size_t i = 0; i < 12; ++i) gw[i] = 2 * c[i] * w[i];
    for (std::size_t i = 0; i < 4; ++i) gb[i] = 2 * (b[i] - 1);
    for (std::size_t i = 0; i < 2; ++i) gh[i] = 2 * h[i];
    avg_w = 0.9 * avg_w + 0.1 * norm_of(gw);
    avg_b = 0.9 * avg_b + 0.1 * norm_of(gb);
    for (double& x : gw) x /= avg_w;
    for (double& x : gb) x /= avg_b;
    for (vec* gr : {&gw, &gb}) {
      const double n = norm_of(*gr);
      if (n > 5) {
        ++clipped;
        for (double& x : *gr) x *= 5 / n;
      } else {
        ++unclipped;
      }
    }
    for (std::size_t i = 0; i < 12; ++i) w[i] -= 0.1 * gw[i];
    for (std::size_t i = 0; i < 4; ++i) b[i] -= 0.1 * gb[i];
    for (std::size_t i = 0; i < 2; ++i) h[i] -= 0.1 * (-0.5 * gh[i]);
    INFO("step " << s);
    kt::check_values<double>("w", read<double>(ex, "w"), {3, 4}, w, 1e-12, 1e-14);
    kt::check_values<double>("b", read<double>(ex, "b"), {4}, b, 1e-12, 1e-14);
    kt::check_values<double>("h", read<double>(ex, "h"), {2}, h, 1e-12, 1e-14);
    CHECK(kt::close(ex.variable<double>("w/grad_norm").item(), avg_w, 1e-12, 0));
    CHECK(kt::close(ex.variable<double>("b/grad_norm").item(), avg_b, 1e-12, 0));
  }
  CHECK(clipped > 0);
  CHECK(unclipped > 0);
}

// ---- the plan of an Adam step, and allocation-free steps ----------------------------------------------------

namespace {

struct adam_large {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {256, 64});
    tensor w = g.variable("w", f32, {256, 64}, init::glorot_uniform(1));
    tensor loss = reduce_sum(square(w - x)) * 0.5;
    g.output("step", minimize(adam{.learning_rate = schedules::exponential_decay(1e-3, 100, 0.9)}, loss));
    return g;
  }
};

}  // namespace

TEST_CASE("minimize.adam.plan") {
  using P = program<adam_large>;
  const auto& p = P::plan;
  // passes over the [256,64] weights: the gradient, m, v and w; nothing else
  int large = 0;
  for (int gi = 0; gi < p.n_groups; ++gi) {
    const node& root = P::nodes[std::size_t(p.groups[std::size_t(gi)].root)];
    large += root.out.static_elements() == 256 * 64;
  }
  CHECK(large == 4);
  // the bias correction's and the schedule's pow run once per step, not once per element
  int pows = 0;
  for (std::size_t i = 0; i < P::N; ++i) {
    if (!p.live[i] || P::nodes[i].kind != op::pow) continue;
    ++pows;
    const int gi = p.group_of[i];
    REQUIRE(gi >= 0);
    CHECK(P::nodes[std::size_t(p.groups[std::size_t(gi)].root)].out.static_elements() == 1);
  }
  CHECK(pows == 3);
}

TEST_CASE("minimize.no_allocation_per_step") {
  auto ex = compile<cpu>(adam_large{});
  auto hooks = compile<cpu>(hook_model{});
  const auto x = kt::uniform<float>(256 * 64, -1, 1, 7);
  ex.run({{"x", view(x, {256, 64})}});
  hooks.run();
  const long before = g_allocations.load();
  for (int s = 0; s < 5; ++s) {
    ex.run({{"x", view(x, {256, 64})}});
    hooks.run();
  }
  CHECK(g_allocations.load() - before == 0);
  CHECK(ex.variable<std::int64_t>("optimizer/iterations").item() == 6);
}

// ---- graph errors ---------------------------------------------------------------------------------------------

namespace {

// The graph is built in constant evaluation (where users meet these errors); only its message
// leaves it.
#define CHECK_GRAPH_ERROR(TEXT, ...)                                                          \
  do {                                                                                        \
    constexpr message_text message_ = [] { __VA_ARGS__ }();                                   \
    INFO("message: " << message_.view());                                                     \
    CHECK(message_.view().find(TEXT) != std::string_view::npos);                              \
  } while (0)

// Errors surface while the compiler evaluates the model, like every other graph error.
static_assert([] {
  graph g;
  tensor w = g.variable("w", f32, {3});
  minimize(sgd{}, reduce_sum(square(w)), {w, w});
  return g.error.view().find("minimize: variable 'w' is listed twice") == 0;
}());

}  // namespace

TEST_CASE("minimize.errors.variable_lists") {
  CHECK_GRAPH_ERROR("minimize: param group #0, entry #1 is a placeholder f32 [3], not a variable (declared at test_minimize.cpp:",
      graph g;
      tensor w = g.variable("w", f32, {3});
      tensor x = g.placeholder("x", f32, {3});
      minimize(sgd{}, reduce_sum(square(w * x)), {w, x});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: variable 'v' is listed twice",
      graph g;
      tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
      minimize(reduce_sum(square(w * v)), param_group{sgd{}, {w, v}}, param_group{adam{}, {v}});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: variable 'n' is i32 [3]; only f32 and f64 variables can be trained",
      graph g;
      tensor w = g.variable("w", f32, {3});
      tensor n = g.variable("n", i32, {3});
      minimize(sgd{}, reduce_sum(square(w)) + cast(reduce_sum(n), f32), {w, n});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: the loss depends on none of the 2 trainable variables to update",
      graph g;
      tensor w = g.variable("w", f32, {3});
      g.variable("u", f32, {3});
      minimize(sgd{}, reduce_sum(stop_gradient(w)), {}, unused_variables::skip);
      return g.error;);
}

// A variable minimize is asked to train (listed, or picked by {}) that no gradient reaches is an
// error naming it; unused_variables::skip (per call or per param group) leaves it alone.
TEST_CASE("minimize.unused_variable_is_an_error") {
  CHECK_GRAPH_ERROR("minimize: variable 'u' f32 [3] (declared at test_minimize.cpp:",
      graph g;
      tensor w = g.variable("w", f32, {3});
      g.variable("u", f32, {3});
      minimize(sgd{}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("receives no gradient: the loss does not depend on it",
      graph g;
      tensor w = g.variable("w", f32, {3}), u = g.variable("u", f32, {3});
      minimize(sgd{}, reduce_sum(square(w)) + reduce_sum(stop_gradient(u)), {w, u});
      return g.error;);
  CHECK_GRAPH_ERROR("variable 'v'",
      graph g;
      tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
      minimize(reduce_sum(square(w)), param_group{sgd{}, {w}}, param_group{adam{}, {v}});
      return g.error;);
  constexpr bool skipped_ok = [] {
    graph g;
    tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
    minimize(reduce_sum(square(w)), param_group{sgd{}, {w}}, param_group{adam{}, {v}, no_transform{}, unused_variables::skip});
    g.variable("u", f32, {3});  // declared after the loss: not selected by {}
    minimize(sgd{.name = "other"}, reduce_sum(square(w)), {}, unused_variables::skip);
    return g.ok();
  }();
  CHECK(skipped_ok);
  CHECK_GRAPH_ERROR("minimize: there is no trainable f32 or f64 variable to update",
      graph g;
      tensor w = g.variable("w", f32, {3}, init::zeros(), /*trainable=*/false);
      minimize(adam{}, reduce_sum(square(w)), {w});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: param groups #0 and #1 both have an empty variable list",
      graph g;
      tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
      minimize(reduce_sum(square(w * v)), param_group{sgd{}, {}}, param_group{adam{}, {}});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: the loss must be an f32 or f64 scalar, got f32 [3]; reduce it first",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{}, square(w));
      return g.error;);
}

TEST_CASE("minimize.errors.names") {
  CHECK_GRAPH_ERROR("minimize: 'optimizer/iterations' is already incremented by another minimize call",
      graph g;
      tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
      minimize(sgd{}, reduce_sum(square(w)), {w});
      minimize(sgd{}, reduce_sum(square(v)), {v});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: the param groups' optimizers have different names",
      graph g;
      tensor w = g.variable("w", f32, {3}), v = g.variable("v", f32, {3});
      minimize(reduce_sum(square(w * v)), param_group{sgd{.name = "a"}, {w}}, param_group{adam{.name = "b"}, {v}});
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: the slot variable 'a_variable_name_of_sixty_two_characters_xxxxxxxxxxxxxxxxxxxxxx/m' would be longer than 63",
      graph g;
      tensor w = g.variable("a_variable_name_of_sixty_two_characters_xxxxxxxxxxxxxxxxxxxxxx", f32, {3});
      minimize(adam{}, reduce_sum(square(w)));
      return g.error;);
  // the location is the line of the variadic call, captured through its first argument
  constexpr int line = __LINE__ + 4;
  constexpr message_text message = [] {
    graph g;
    tensor w = g.variable("w", f32, {3});
    minimize(reduce_sum(square(w)), param_group{sgd{}, {w, w}});
    return g.error;
  }();
  CHECK(std::string(message.view()).find("(at test_minimize.cpp:" + std::to_string(line) + ")") != std::string::npos);
}

TEST_CASE("minimize.errors.options") {
  CHECK_GRAPH_ERROR("adam: only one of clipnorm, clipvalue and global_clipnorm may be set",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(adam{.clipnorm = 1, .clipvalue = 0.5}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("adam: beta_1 and beta_2 must be in [0, 1)",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(adam{.beta_1 = 1.0}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("sgd: momentum must be in [0, 1]",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{.momentum = -0.5}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("minimize: the gradient transform of param group #0 returned f32 [4] for variable 'w' f32 [3,4]",
      graph g;
      tensor w = g.variable("w", f32, {3, 4});
      minimize(reduce_sum(square(w)), param_group{sgd{}, {w}, [](graph&, std::span<tensor> gs, std::span<const tensor>) {
                                                    gs[0] = reduce_sum(gs[0], 0);
                                                  }});
      return g.error;);
}

TEST_CASE("schedules.errors") {
  CHECK_GRAPH_ERROR("piecewise_constant: 2 boundaries need 3 values, got 2 (at test_minimize.cpp:",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{.learning_rate = schedules::piecewise_constant({1, 2}, {0.1, 0.01})}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("piecewise_constant: 17 boundaries, at most 16",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{.learning_rate = schedules::piecewise_constant({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
                                                                  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})},
               reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("piecewise_constant: boundaries must be strictly increasing",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{.learning_rate = schedules::piecewise_constant({1, 3, 2}, {0.1, 0.01, 0.001, 0.0001})},
               reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("cosine_decay: decay_steps must be positive",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(adam{.learning_rate = schedules::cosine_decay(0.1, 0)}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("variable: the variable's name must have 1 to 63 characters",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(adam{.learning_rate = schedules::variable(0.1, "")}, reduce_sum(square(w)));
      return g.error;);
  CHECK_GRAPH_ERROR("linear_warmup: warmup_steps must be positive",
      graph g;
      tensor w = g.variable("w", f32, {3});
      minimize(sgd{.learning_rate = schedules::linear_warmup(0.1, -1)}, reduce_sum(square(w)));
      return g.error;);
}
