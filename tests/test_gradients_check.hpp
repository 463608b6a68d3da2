// The finite-difference checker of the gradient tests: central differences in double precision
// on f64 graphs, independent of the library's gradient rules.
//
// A model under test outputs its (summed) objective as "y" and, for every input `x` it
// differentiates, the analytic gradient as "d_x". check_gradients() runs it once for the analytic
// values, then perturbs every element of every input by ±h through the feeds (or the variable
// store) and compares (sum(y(x+h)) - sum(y(x-h))) / 2h with the analytic value; sum(y) because a
// non-scalar y gets an implicit upstream of ones.
#pragma once
#include <algorithm>
#include <span>
#include <string>
#include <vector>
#include "test_util.hpp"

namespace gc {

struct input {
  std::string name;
  kiln::dims shape;
  std::vector<double> values;
  bool variable = false;  // perturbed in the executor's variable store instead of fed
};

struct options {
  double h = 1e-6;
  double tol = 1e-6;  // |analytic - numeric| <= tol * max(1, max |gradient| of that input)
  std::string objective = "y";  // the output differentiated (a model may hold several)
};

// Values in [lo, hi] that keep at least `gap` away from every kink in `kinks` (0 by default), so
// that no ±h perturbation crosses a non-differentiable point.
inline std::vector<double> values(std::size_t n, double lo, double hi, std::uint64_t seed, double gap = 0) {
  std::vector<double> v = kt::uniform<double>(n, lo, hi, seed);
  for (auto& x : v)
    if (gap > 0 && std::fabs(x) < gap) x = x < 0 ? -gap - std::fabs(x) : gap + x;
  return v;
}

inline input make(std::string name, kiln::dims d, double lo, double hi, std::uint64_t seed, double gap = 0) {
  return input{std::move(name), d, values(std::size_t(d.elements()), lo, hi, seed, gap)};
}

template <class Ex> const auto& run_with(Ex& ex, std::vector<input>& ins, const std::vector<kiln::feed>& extra) {
  std::vector<kiln::feed> feeds = extra;
  for (auto& in : ins) {
    if (in.variable) {
      auto v = ex.template variable<double>(in.name);
      REQUIRE(std::size_t(v.size()) == in.values.size());
      std::copy(in.values.begin(), in.values.end(), v.flat().begin());
    } else {
      feeds.push_back({in.name, kiln::view(in.values.data(), in.shape)});
    }
  }
  return ex.run(std::span<const kiln::feed>(feeds));
}

template <class Ex> double objective(Ex& ex, std::vector<input>& ins, const std::vector<kiln::feed>& extra, const std::string& y = "y") {
  double s = 0;
  for (double v : run_with(ex, ins, extra).template get<double>(y).flat()) s += v;
  return s;
}

// The names in `only` that name no input: a misspelled name would otherwise check nothing.
inline std::vector<std::string> unknown_names(const std::vector<input>& ins, const std::vector<std::string>& only) {
  std::vector<std::string> unknown;
  for (const std::string& name : only)
    if (std::none_of(ins.begin(), ins.end(), [&](const input& in) { return in.name == name; })) unknown.push_back(name);
  return unknown;
}

// Checks d sum(y) / d x for the inputs named in `only` (all inputs when empty; each name must be
// one of the inputs); the other inputs are fed at their values.
template <class Ex>
void check_gradients(Ex& ex, std::vector<input> ins, std::vector<kiln::feed> extra = {}, std::vector<std::string> only = {},
                     options o = {}) {
  const std::vector<std::string> unknown = unknown_names(ins, only);
  REQUIRE_MESSAGE(unknown.empty(), "check_gradients: `only` names no input called '" << unknown.front() << "'");
  auto checked = [&](const input& in) { return only.empty() || std::find(only.begin(), only.end(), in.name) != only.end(); };
  std::vector<std::vector<double>> analytic(ins.size());
  {
    const auto& out = run_with(ex, ins, extra);
    for (std::size_t i = 0; i < ins.size(); ++i) {
      if (!checked(ins[i])) continue;
      auto gv = out.template get<double>("d_" + ins[i].name);
      INFO("gradient of " << ins[i].name);
      REQUIRE_MESSAGE(gv.shape() == ins[i].shape, "shape " << kt::dims_text(gv.shape()) << ", expected " << kt::dims_text(ins[i].shape));
      analytic[i].assign(gv.flat().begin(), gv.flat().end());
    }
  }
  for (std::size_t i = 0; i < ins.size(); ++i) {
    if (!checked(ins[i])) continue;
    std::vector<double> numeric(ins[i].values.size());
    for (std::size_t k = 0; k < numeric.size(); ++k) {
      const double v = ins[i].values[k];
      ins[i].values[k] = v + o.h;
      const double fp = objective(ex, ins, extra, o.objective);
      ins[i].values[k] = v - o.h;
      const double fm = objective(ex, ins, extra, o.objective);
      ins[i].values[k] = v;
      numeric[k] = (fp - fm) / (2 * o.h);
    }
    double scale = 1;
    for (std::size_t k = 0; k < numeric.size(); ++k) scale = std::max({scale, std::fabs(numeric[k]), std::fabs(analytic[i][k])});
    std::size_t bad = 0;
    std::ostringstream first;
    first.precision(12);
    for (std::size_t k = 0; k < numeric.size(); ++k)
      if (!(std::fabs(analytic[i][k] - numeric[k]) <= o.tol * scale)) {
        if (bad < 5) first << " [" << k << "] analytic " << analytic[i][k] << " numeric " << numeric[k] << ";";
        ++bad;
      }
    CHECK_MESSAGE(bad == 0, "d_" << ins[i].name << ": " << bad << " of " << numeric.size() << " differ (scale " << scale << "):" << first.str());
  }
}

}  // namespace gc
