// Gradients of the losses (nn/losses.hpp) and of softmax, log_softmax and logsumexp
// (nn/activations.hpp) against central finite differences on f64 graphs, for every reduction and
// with sample weights; closed-form gradients where they are known; and the A2C objective exactly
// as the benchmark writes it. Values are checked in test_losses.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_gradients_check.hpp"

using namespace kiln;
using kt::check_values;

namespace {
constexpr std::int64_t C = 5;  // classes
constexpr std::int64_t D = 3;  // width of the dense losses' last axis
}  // namespace

// ---- gradients: central finite differences on an f64 graph -----------------------------------------

namespace {

// One objective over every loss, each on its own inputs, so that each test checks the gradients
// of one loss. Every loss enters as sum-with-weights + 0.3 * mean + its per-sample vector against
// a non-uniform upstream `up`, so all three reductions and the weights are differentiated.
struct gradient_model {
  constexpr graph operator()() const {
    constexpr dtype T = f64;
    graph g;
    tensor labels = g.placeholder("labels", i32, {batch});
    tensor up = g.placeholder("up", T, {batch});
    auto mix = [&](auto loss, tensor w) {
      return loss({.sample_weight = w, .reduction = reduction::sum}) + 0.3 * loss({}) +
             reduce_sum(loss({.reduction = reduction::none}) * up);
    };
    std::array<tensor, 22> xs{};
    std::size_t n_xs = 0;
    auto in = [&](std::string_view name, kiln::shape s) { return xs[n_xs++] = g.placeholder(name, T, s); };
    tensor sce_logits = in("sce_logits", {batch, C}), sce_w = in("sce_w", {batch});
    tensor scce_probs = in("scce_probs", {batch, C}), scce_w = in("scce_w", {batch});
    tensor cce_soft = in("cce_soft", {batch, C}), cce_logits = in("cce_logits", {batch, C});
    tensor ccep_soft = in("ccep_soft", {batch, C}), ccep_probs = in("ccep_probs", {batch, C});
    tensor bce_z = in("bce_z", {batch, D}), bce_x = in("bce_x", {batch, D});
    tensor bcep_z = in("bcep_z", {batch, D}), bcep_p = in("bcep_p", {batch, D});
    tensor mse_t = in("mse_t", {batch, D}), mse_y = in("mse_y", {batch, D}), mse_w = in("mse_w", {batch});
    tensor ret = in("ret", {batch}), val = in("val", {batch, 1});
    tensor hub_t = in("hub_t", {batch, D}), hub_y = in("hub_y", {batch, D});
    tensor ent_logits = in("ent_logits", {batch, C});
    tensor mask_y = in("mask_y", {batch, D});
    tensor act_x = in("act_x", {batch, C});
    tensor mask_t = g.placeholder("mask_t", T, {batch, D});
    tensor w = g.placeholder("w", T, {batch});

    tensor y = mix([&](loss_options o) { return sparse_softmax_cross_entropy(labels, sce_logits, o); }, sce_w);
    y = y + mix([&](loss_options o) { return sparse_categorical_cross_entropy(labels, scce_probs, o); }, scce_w);
    y = y + mix([&](loss_options o) { return categorical_cross_entropy(cce_soft, cce_logits, true, o); }, w);
    y = y + mix([&](loss_options o) { return categorical_cross_entropy(ccep_soft, ccep_probs, o); }, w);
    y = y + mix([&](loss_options o) { return binary_cross_entropy(bce_z, bce_x, true, o); }, w);
    y = y + mix([&](loss_options o) { return binary_cross_entropy(bcep_z, bcep_p, false, o); }, w);
    y = y + mix([&](loss_options o) { return mean_squared_error(mse_t, mse_y, o); }, mse_w);
    y = y + mix([&](loss_options o) { return mean_squared_error(ret, val, o); }, w);
    y = y + mix([&](loss_options o) { return huber(hub_t, hub_y, 1.0, o); }, w);
    y = y + mix([&](loss_options o) { return categorical_entropy_from_logits(ent_logits, o); }, w);
    y = y + masked_mean_squared_error(mask_t, mask_y);
    tensor c = g.constant({0.5, -1.25, 2.0, 0.75, -0.3}, T, {C});
    y = y + reduce_sum(softmax(act_x) * c) + reduce_sum(log_softmax(act_x) * (c * c)) + reduce_sum(logsumexp(act_x) * up) +
        reduce_sum(logsumexp(act_x, 0) * c) + reduce_sum(softmax(act_x, 0) * (c - 1.0));
    g.output("y", y);
    if (n_xs != xs.size()) return g.fail_with("gradient_model", detail::no_loc, "update the size of xs"), g;
    const auto d = gradients(y, xs);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      name_text name("d_");
      name.append(xs[i].info().name.view());
      g.output(name.view(), d[i]);
    }
    return g;
  }
};

auto& gradient_executor() {
  static auto ex = compile<cpu>(gradient_model{});
  return ex;
}

gc::input& input_named(std::vector<gc::input>& ins, const std::string& name) {
  for (auto& in : ins)
    if (in.name == name) return in;
  FAIL("no input " << name);
  return ins[0];
}

// Inputs away from every kink: probabilities inside the clip bounds, |y - t| away from huber's delta;
// bce_x has exact zeros (where max(x,0) and |x| of the stable formula have theirs).
std::vector<gc::input> gradient_inputs(std::int64_t B, std::uint64_t seed) {
  auto u = [&](const char* name, kiln::dims d, double lo, double hi) { return gc::make(name, d, lo, hi, seed++); };
  std::vector<gc::input> ins = {
      u("sce_logits", {B, C}, -3, 3),  u("sce_w", {B}, -1, 2),          u("scce_probs", {B, C}, 0.1, 1),
      u("scce_w", {B}, -1, 2),         u("cce_soft", {B, C}, 0, 1),      u("cce_logits", {B, C}, -3, 3),
      u("ccep_soft", {B, C}, 0, 1),    u("ccep_probs", {B, C}, 0.1, 1), u("bce_z", {B, D}, 0, 1),
      u("bce_x", {B, D}, -4, 4),       u("bcep_z", {B, D}, 0, 1),       u("bcep_p", {B, D}, 0.05, 0.95),
      u("mse_t", {B, D}, -2, 2),       u("mse_y", {B, D}, -2, 2),       u("mse_w", {B}, -1, 2),
      u("ret", {B}, -2, 2),            u("val", {B, 1}, -2, 2),         u("hub_t", {B, D}, -2, 2),
      u("hub_y", {B, D}, -2, 2),       u("ent_logits", {B, C}, -3, 3),  u("mask_y", {B, D}, -2, 2),
      u("act_x", {B, C}, -3, 3)};
  auto& bce_x = input_named(ins, "bce_x").values;
  for (std::size_t i = 0; i < bce_x.size(); i += 3) bce_x[i] = 0;
  const auto& hub_t = input_named(ins, "hub_t").values;
  auto& hub_y = input_named(ins, "hub_y").values;
  for (std::size_t i = 0; i < hub_y.size(); ++i)
    if (std::fabs(std::fabs(hub_y[i] - hub_t[i]) - 1.0) < 0.05) hub_y[i] += 0.2;  // keep |e| off delta = 1
  return ins;
}

struct gradient_extras {
  std::vector<std::int32_t> labels;
  std::vector<double> up, mask_t, w;
  std::vector<feed> feeds;
  gradient_extras(std::int64_t B, std::uint64_t seed, bool empty_mask = false)
      : labels(kt::integers<std::int32_t>(std::size_t(B), 0, C - 1, seed)),
        up(kt::uniform<double>(std::size_t(B), -1, 1, seed + 1)),
        mask_t(kt::uniform<double>(std::size_t(B * D), -2, 2, seed + 2)),
        w(kt::uniform<double>(std::size_t(B), -1, 2, seed + 3)) {
    for (std::size_t i = 0; i < mask_t.size(); ++i)
      if (empty_mask || i % 3 == 1) mask_t[i] = 0;
    feeds = {{"labels", view(labels, {B})}, {"up", view(up, {B})}, {"mask_t", view(mask_t, {B, D})}, {"w", view(w, {B})}};
  }
};

void check_loss_gradients(std::vector<std::string> which) {
  for (std::int64_t B : {3, 2}) {  // a second batch size: mean divides by the fed batch
    INFO("batch " << B);
    gradient_extras extra(B, std::uint64_t(B) * 11);
    gc::check_gradients(gradient_executor(), gradient_inputs(B, std::uint64_t(B) * 13), extra.feeds, which);
  }
}

}  // namespace

TEST_CASE("losses.sparse_softmax_cross_entropy.gradients") { check_loss_gradients({"sce_logits", "sce_w"}); }
TEST_CASE("losses.sparse_categorical_cross_entropy.gradients") { check_loss_gradients({"scce_probs", "scce_w"}); }
TEST_CASE("losses.categorical_cross_entropy.from_logits.gradients") { check_loss_gradients({"cce_soft", "cce_logits"}); }
TEST_CASE("losses.categorical_cross_entropy.from_probs.gradients") { check_loss_gradients({"ccep_soft", "ccep_probs"}); }
TEST_CASE("losses.binary_cross_entropy.from_logits.gradients") { check_loss_gradients({"bce_z", "bce_x"}); }
TEST_CASE("losses.binary_cross_entropy.from_probs.gradients") { check_loss_gradients({"bcep_z", "bcep_p"}); }
TEST_CASE("losses.mean_squared_error.gradients") { check_loss_gradients({"mse_t", "mse_y", "mse_w", "ret", "val"}); }
TEST_CASE("losses.huber.gradients") { check_loss_gradients({"hub_t", "hub_y"}); }
TEST_CASE("losses.categorical_entropy_from_logits.gradients") { check_loss_gradients({"ent_logits"}); }
TEST_CASE("losses.masked_mean_squared_error.gradients") { check_loss_gradients({"mask_y"}); }
TEST_CASE("losses.activations.gradients") { check_loss_gradients({"act_x"}); }

TEST_CASE("losses.masked_mean_squared_error.empty_mask_gradient_is_zero") {
  gradient_extras extra(3, 5, true);
  auto ins = gradient_inputs(3, 6);
  const auto& out = gc::run_with(gradient_executor(), ins, extra.feeds);
  check_values("d mask_y", out.get<double>("d_mask_y"), {3, D}, std::vector<double>(3 * D, 0.0));
}

// The gradient of sigmoid cross-entropy at x = 0 is sigmoid(0) - z = 0.5 - z (a formula built
// from max(x, 0) and |x| would give -z there).
TEST_CASE("losses.binary_cross_entropy.from_logits.gradient_at_zero") {
  gradient_extras extra(2, 3);
  auto ins = gradient_inputs(2, 4);
  for (auto& in : ins)
    if (in.name == "bce_x") std::fill(in.values.begin(), in.values.end(), 0.0);
  const auto& out = gc::run_with(gradient_executor(), ins, extra.feeds);
  // d/dx of sum_w + 0.3 mean + up . none, per-sample = mean over D: (w_b + 0.3 / B + up_b) / D * (0.5 - z)
  const std::vector<double>& z = input_named(ins, "bce_z").values;
  std::vector<double> want(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) {
    const std::size_t b = i / D;
    want[i] = (extra.w[b] + 0.3 / 2 + extra.up[b]) / double(D) * (0.5 - z[i]);
  }
  check_values("d bce_x at x = 0", out.get<double>("d_bce_x"), {2, D}, want, 1e-12, 1e-14);
}

// ---- the A2C objective, written exactly as the benchmark writes it ----------------------------------

namespace {

constexpr std::int64_t A = 3;  // actions

template <dtype T, bool WithGradients> struct a2c_model {
  constexpr graph operator()() const {
    graph g;
    tensor actions = g.placeholder("actions", i32, {batch});
    tensor advantages = g.placeholder("advantages", T, {batch});
    tensor returns = g.placeholder("returns", T, {batch});
    tensor logits = g.placeholder("logits", T, {batch, A});
    tensor value = g.placeholder("value", T, {batch, 1});
    tensor loss = sparse_softmax_cross_entropy(actions, logits, {.sample_weight = advantages, .reduction = reduction::sum}) +
                  0.5 * mean_squared_error(returns, value, {.reduction = reduction::sum}) -
                  1e-4 * categorical_entropy_from_logits(logits, {.reduction = reduction::sum});
    g.output("y", loss);
    if constexpr (WithGradients) {
      auto [d_logits, d_value] = gradients(loss, {logits, value});
      g.output("d_logits", d_logits);
      g.output("d_value", d_value);
    }
    return g;
  }
};

struct a2c_data {
  std::int64_t B;
  std::vector<std::int32_t> actions;
  std::vector<double> advantages, returns, logits, value;
};
a2c_data a2c_inputs(std::int64_t B, std::uint64_t seed) {
  const auto n = std::size_t(B);
  return {B, kt::integers<std::int32_t>(n, 0, A - 1, seed), kt::uniform<double>(n, -2, 2, seed + 1), kt::uniform<double>(n, -3, 3, seed + 2),
          kt::uniform<double>(n * A, -4, 4, seed + 3), kt::uniform<double>(n, -3, 3, seed + 4)};
}

// loss = sum_b adv_b (lse_b - x[b, a_b]) + 0.5 sum_b (v_b - r_b)^2 - 1e-4 sum_b H_b, and the closed
// forms d/dx[b,j] = adv_b (p_bj - [j == a_b]) + 1e-4 p_bj (log p_bj + H_b), d/dv_b = v_b - r_b.
struct a2c_reference {
  double loss = 0;
  std::vector<double> d_logits, d_value;
};
a2c_reference a2c_ref(const a2c_data& d) {
  a2c_reference r;
  r.d_logits.resize(d.logits.size());
  for (std::int64_t b = 0; b < d.B; ++b) {
    const double* x = &d.logits[std::size_t(b * A)];
    double m = x[0], s = 0;
    for (std::int64_t j = 1; j < A; ++j) m = std::max(m, x[j]);
    for (std::int64_t j = 0; j < A; ++j) s += std::exp(x[j] - m);
    const double lse = m + std::log(s);
    double h = 0;
    for (std::int64_t j = 0; j < A; ++j) h -= std::exp(x[j] - lse) * (x[j] - lse);
    const auto ub = std::size_t(b);
    const double adv = d.advantages[ub], err = d.value[ub] - d.returns[ub];
    r.loss += adv * (lse - x[d.actions[ub]]) + 0.5 * err * err - 1e-4 * h;
    for (std::int64_t j = 0; j < A; ++j) {
      const double p = std::exp(x[j] - lse);
      r.d_logits[std::size_t(b * A + j)] = adv * (p - (j == d.actions[ub] ? 1.0 : 0.0)) + 1e-4 * p * (x[j] - lse + h);
    }
    r.d_value.push_back(err);
  }
  return r;
}

template <dtype DT> void check_a2c(std::int64_t B) {
  using T = ctype<DT>;
  INFO(name_of(DT) << " graph, batch " << B);
  static auto ex = compile<cpu>(a2c_model<DT, true>{});
  a2c_data d = a2c_inputs(B, std::uint64_t(B) + 40);
  for (auto* v : {&d.advantages, &d.returns, &d.logits, &d.value}) *v = kt::rounded<T>(*v);
  const auto adv = kt::as<T>(d.advantages), ret = kt::as<T>(d.returns), logits = kt::as<T>(d.logits), value = kt::as<T>(d.value);
  const auto& out = ex.run({{"actions", view(d.actions, {B})}, {"advantages", view(adv, {B})}, {"returns", view(ret, {B})},
                            {"logits", view(logits, {B, A})}, {"value", view(value, {B, 1})}});
  const a2c_reference want = a2c_ref(d);
  const double rtol = std::is_same_v<T, float> ? 2e-5 : 1e-12, atol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  check_values("loss", out.template get<T>("y"), {}, {want.loss}, rtol, atol);
  check_values("d loss / d logits", out.template get<T>("d_logits"), {B, A}, want.d_logits, rtol, atol);
  check_values("d loss / d value", out.template get<T>("d_value"), {B, 1}, want.d_value, rtol, atol);
}

}  // namespace

TEST_CASE("losses.a2c.values_and_closed_form_gradients") {
  for (std::int64_t B : {1, 4, 33}) {
    check_a2c<f32>(B);
    check_a2c<f64>(B);
  }
}

TEST_CASE("losses.a2c.gradients") {
  static auto ex = compile<cpu>(a2c_model<f64, true>{});
  const a2c_data d = a2c_inputs(4, 77);
  gc::input logits{"logits", {4, A}, d.logits}, value{"value", {4, 1}, d.value};
  gc::check_gradients(ex, {logits, value},
                      {{"actions", view(d.actions, {4})}, {"advantages", view(d.advantages, {4})}, {"returns", view(d.returns, {4})}});
}

// The cross-entropy and the entropy share one log-softmax of the logits (CSE), and each loss term
// reduces once: max and sum of exp over the classes, then one total per term.
TEST_CASE("losses.a2c.graph_shares_log_softmax") {
  using P = program<a2c_model<f32, false>>;
  int reductions = 0, maxima = 0, exps = 0;
  for (std::size_t i = 0; i < P::N; ++i) {
    if (!P::plan.live[i]) continue;
    const op k = P::nodes[i].kind;
    reductions += family_of(k) == op_family::reduction;
    maxima += k == op::reduce_max;
    exps += k == op::exp;
  }
  CHECK(maxima == 1);
  CHECK(exps == 2);  // exp(x - max) inside the sum, exp(log_softmax) in the entropy
  CHECK(reductions == 5);
  CHECK(P::plan.count_groups(group_kind::gather) == 1);
}

// d/dy_i = 2 (y_i - t_i) / n where t_i != 0, else 0 (also where y_i is inf or NaN there).
TEST_CASE("losses.masked_mean_squared_error.gradient_ignores_unselected_garbage") {
  gradient_extras extra(3, 8);
  auto ins = gradient_inputs(3, 9);
  std::vector<double>& y = input_named(ins, "mask_y").values;
  double n = 0;
  for (double t : extra.mask_t) n += t != 0;
  std::vector<double> want(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (extra.mask_t[i] == 0) y[i] = i % 2 ? NAN : -INFINITY;
    else want[i] = 2 * (y[i] - extra.mask_t[i]) / n;
  }
  const auto& out = gc::run_with(gradient_executor(), ins, extra.feeds);
  check_values("d mask_y", out.get<double>("d_mask_y"), {3, D}, want, 1e-12, 1e-15);
}
