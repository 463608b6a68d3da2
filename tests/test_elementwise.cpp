// Elementwise ops against plain loops: unary math (SIMD body and scalar tails), binary ops,
// comparisons, logic, where, casts, fills and iota; numpy broadcasting including the batch dim.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_util.hpp"

using namespace kiln;
using kt::check_values;

namespace {

using kt::as;
using kt::general_input;
using kt::map;
using kt::map2;
using kt::positive_input;
using kt::rounded;

// ---- inputs ---------------------------------------------------------------------------------------

// Inputs for exp: large magnitudes that still fit in f32 after exp.
std::vector<double> exp_input(std::size_t n, std::uint64_t seed) {
  static const double edges[] = {-80, 0, 80, -1, 1, -30, 30, 0.5};
  kt::rng r(seed);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i % 2 == 0 ? edges[(i / 2) % 8] : r.uniform(-10, 10);
  return v;
}


// ---- unary float ops ----------------------------------------------------------------------------

template <std::int64_t N, dtype T> struct unary_float_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {N});
    tensor e = g.placeholder("e", T, {N});
    tensor p = g.placeholder("p", T, {N});
    g.output("neg", neg(x));
    g.output("minus", -e);  // operator form, on another input so it is not the same node as neg(x)
    g.output("abs", abs(x));
    g.output("exp", exp(e));
    g.output("log", log(p));
    g.output("sqrt", sqrt(p));
    g.output("rsqrt", rsqrt(p));
    g.output("square", square(x));
    g.output("tanh", tanh(x));
    g.output("sigmoid", sigmoid(x));
    g.output("relu", relu(x));
    g.output("softplus", softplus(x));
    g.output("sign", sign(x));
    // a chain of several ops in one fused loop
    g.output("chain", sigmoid(tanh(x) * 2.0 + 1.0) - sqrt(p) / (abs(x) + 1.0));
    return g;
  }
};

template <std::int64_t N, dtype T> void check_unary_float(double rtol, double atol) {
  using C = ctype<T>;
  CAPTURE(N);
  const auto xs = rounded<C>(general_input(std::size_t(N), 11 + N));
  const auto es = rounded<C>(exp_input(std::size_t(N), 23 + N));
  const auto ps = rounded<C>(positive_input(std::size_t(N), 37 + N));
  const auto xv = as<C>(xs), ev = as<C>(es), pv = as<C>(ps);
  auto ex = compile<cpu>(unary_float_model<N, T>{});
  const dims d{N};
  const auto& out = ex.run({{"x", view(xv, d)}, {"e", view(ev, d)}, {"p", view(pv, d)}});
  check_values<C>("neg", out.template get<C>("neg"), d, map(xs, [](double v) { return -v; }), 0, 0);
  check_values<C>("minus", out.template get<C>("minus"), d, map(es, [](double v) { return -v; }), 0, 0);
  check_values<C>("abs", out.template get<C>("abs"), d, map(xs, [](double v) { return std::fabs(v); }), 0, 0);
  check_values<C>("exp", out.template get<C>("exp"), d, map(es, [](double v) { return std::exp(v); }), rtol, atol);
  check_values<C>("log", out.template get<C>("log"), d, map(ps, [](double v) { return std::log(v); }), rtol, atol);
  check_values<C>("sqrt", out.template get<C>("sqrt"), d, map(ps, [](double v) { return std::sqrt(v); }), rtol, atol);
  check_values<C>("rsqrt", out.template get<C>("rsqrt"), d, map(ps, [](double v) { return 1.0 / std::sqrt(v); }), rtol, atol);
  check_values<C>("square", out.template get<C>("square"), d, map(xs, [](double v) { return v * v; }), rtol, atol);
  check_values<C>("tanh", out.template get<C>("tanh"), d, map(xs, [](double v) { return std::tanh(v); }), rtol, atol);
  check_values<C>("sigmoid", out.template get<C>("sigmoid"), d, map(xs, [](double v) {
                    return v >= 0 ? 1.0 / (1.0 + std::exp(-v)) : std::exp(v) / (1.0 + std::exp(v));
                  }), rtol, atol);
  check_values<C>("relu", out.template get<C>("relu"), d, map(xs, [](double v) { return v > 0 ? v : 0.0; }), 0, 0);
  check_values<C>("softplus", out.template get<C>("softplus"), d, map(xs, [](double v) {
                    return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
                  }), rtol, atol);
  check_values<C>("sign", out.template get<C>("sign"), d, map(xs, [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }), 0, 0);
  std::vector<double> chain(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i)
    chain[i] = 1.0 / (1.0 + std::exp(-(std::tanh(xs[i]) * 2 + 1))) - std::sqrt(ps[i]) / (std::fabs(xs[i]) + 1);
  check_values<C>("chain", out.template get<C>("chain"), d, chain, rtol * 4, atol * 4);
  // softplus and sigmoid stay finite and exact in the far tails
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (xs[i] == 100) {
      CHECK(double(out.template get<C>("softplus").flat()[i]) == doctest::Approx(100.0));
      CHECK(double(out.template get<C>("sigmoid").flat()[i]) == 1.0);
    }
    if (xs[i] == -100) {
      CHECK(double(out.template get<C>("softplus").flat()[i]) >= 0.0);
      CHECK(double(out.template get<C>("softplus").flat()[i]) < 1e-30);
      CHECK(double(out.template get<C>("sigmoid").flat()[i]) >= 0.0);
      CHECK(double(out.template get<C>("sigmoid").flat()[i]) < 1e-30);
    }
  }
}

}  // namespace

TEST_CASE("ops.elementwise.unary.f32.lengths") {
  const double rtol = 2e-6, atol = 1e-7;
  check_unary_float<1, f32>(rtol, atol);
  check_unary_float<7, f32>(rtol, atol);
  check_unary_float<8, f32>(rtol, atol);
  check_unary_float<9, f32>(rtol, atol);
  check_unary_float<63, f32>(rtol, atol);
  check_unary_float<1000, f32>(rtol, atol);
  check_unary_float<100003, f32>(rtol, atol);  // large enough to run in parallel chunks
}

TEST_CASE("ops.elementwise.unary.f64.lengths") {
  const double rtol = 1e-13, atol = 1e-300;
  check_unary_float<1, f64>(rtol, atol);
  check_unary_float<9, f64>(rtol, atol);
  check_unary_float<1000, f64>(rtol, atol);
}

