// Runs the test registry (tests/op_cases.hpp) on the CPU executor: every case's result against its
// plain-loop reference, and the gradients of every case that declares a tolerance against central
// finite differences (tests/test_gradients_check.hpp). One executor per group of cases.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>
#include "op_cases.hpp"
#include "test_gradients_check.hpp"

namespace op_cases {

// The feeds of every case of a group: f64 inputs as gc::inputs (the gradient checker perturbs
// them), the others (bool conditions, integer indices and keys) as fixed feeds.
struct group_feeds {
  std::vector<gc::input> floating;
  std::vector<std::unique_ptr<bool[]>> bools;
  std::vector<std::vector<std::int32_t>> ints;
  std::deque<std::string> names;  // the fixed feeds' names (a feed holds a view)
  std::vector<kiln::feed> fixed;
  std::vector<values> case_values;  // per case of `cases`, empty when not in the group
};

inline group_feeds feeds_of(case_group group) {
  group_feeds f;
  f.case_values.resize(case_count);
  f.ints.reserve(64);
  for (std::size_t i = 0; i < case_count; ++i) {
    const op_case& c = cases[i];
    if (!c.is_case() || group_of(c.id) != group) continue;
    f.case_values[i] = make_inputs(c, 1000 + i);
    for (int k = 0; k < c.n_inputs; ++k) {
      const input_spec& s = c.inputs[std::size_t(k)];
      const std::vector<double>& v = f.case_values[i][std::size_t(k)];
      const kiln::dims d = kiln::dims::of(s.dims, 1);
      const std::string name(input_name(c, k).view());
      if (s.type == dtype::f64) {
        f.floating.push_back(gc::input{name, d, v});
      } else if (s.type == dtype::boolean) {
        f.bools.emplace_back(new bool[v.size()]);
        for (std::size_t j = 0; j < v.size(); ++j) f.bools.back()[j] = v[j] != 0;
        f.fixed.push_back({f.names.emplace_back(name), kiln::view(static_cast<const bool*>(f.bools.back().get()), d)});
      } else {
        REQUIRE_MESSAGE(s.type == dtype::i32, c.name() << ": inputs are f64, bool or i32");
        REQUIRE(f.ints.size() < f.ints.capacity());  // the views below point into these vectors
        f.ints.emplace_back(v.begin(), v.end());
        f.fixed.push_back({f.names.emplace_back(name), kiln::view(f.ints.back(), d)});
      }
    }
  }
  return f;
}

template <class T> void check_result(const op_case& c, const kiln::tensor_view<const T>& got, const std::vector<double>& want) {
  kt::check_values(std::string(c.name()).c_str(), got, kiln::dims::of(c.out, 1), want, c.rtol, c.atol);
}

// Every case of the group: the forward result against the reference.
template <class Ex> void check_forward(Ex& ex, group_feeds& f, case_group group) {
  const auto& out = gc::run_with(ex, f.floating, f.fixed);
  int checked = 0;
  for (std::size_t i = 0; i < case_count; ++i) {
    const op_case& c = cases[i];
    if (!c.is_case() || group_of(c.id) != group) continue;
    const std::vector<double> want = c.reference(f.case_values[i]);
    const std::string name(c.name());
    switch (c.out_type) {
      case dtype::f64: check_result(c, out.template get<double>(name), want); break;
      case dtype::f32: check_result(c, out.template get<float>(name), want); break;
      case dtype::i32: check_result(c, out.template get<std::int32_t>(name), want); break;
      case dtype::boolean: check_result(c, out.template get<bool>(name), want); break;
      default: FAIL(c.name() << ": the check reads f64, f32, i32 or bool results"); break;
    }
    ++checked;
  }
  CHECK(checked > 0);
}

// The cases of the group with a gradient tolerance: each input's gradient against finite differences.
template <class Ex> void check_gradients_of(Ex& ex, group_feeds& f, case_group group) {
  for (std::size_t i = 0; i < case_count; ++i) {
    const op_case& c = cases[i];
    if (!c.is_case() || group_of(c.id) != group || !(c.grad_tol > 0)) continue;
    INFO("gradient of " << c.name());
    std::vector<std::string> only;
    for (int k = 0; k < c.n_inputs; ++k)
      if (differentiated(c, k)) only.emplace_back(input_name(c, k).view());
    gc::check_gradients(ex, f.floating, f.fixed, only, gc::options{c.grad_h, c.grad_tol, std::string(objective_name(c).view())});
  }
}

// The SIMD pass (runs_in_f32): the elementwise cases in f32 over packet-wide rows.
template <class Ex> void check_forward_f32(Ex& ex) {
  std::vector<std::vector<float>> data;
  std::deque<std::string> names;
  std::vector<kiln::feed> feeds;
  std::vector<values> case_values(case_count);
  data.reserve(4 * case_count);
  const kiln::dims d = kiln::dims::of(simd_shape, 1);
  for (std::size_t i = 0; i < case_count; ++i) {
    const op_case& c = cases[i];
    if (!runs_in_f32(c)) continue;
    case_values[i] = make_inputs(c, 2000 + i, true);
    for (int k = 0; k < c.n_inputs; ++k) {
      data.emplace_back(case_values[i][std::size_t(k)].begin(), case_values[i][std::size_t(k)].end());
      feeds.push_back({names.emplace_back(input_name(c, k).view()), kiln::view(data.back(), d)});
    }
  }
  const auto& out = ex.run(std::span<const kiln::feed>(feeds));
  int checked = 0;
  for (std::size_t i = 0; i < case_count; ++i) {
    const op_case& c = cases[i];
    if (!runs_in_f32(c)) continue;
    kt::check_values(std::string(c.name()).c_str(), out.template get<float>(std::string(c.name())), d, c.reference(case_values[i]), c.rtol_f32,
                     c.atol_f32);
    ++checked;
  }
  CHECK(checked >= 20);  // the unary and binary math ops
}

template <case_group G> void check_group() {
  auto ex = kiln::compile<kiln::cpu>(model<G>{});
  group_feeds f = feeds_of(G);
  SUBCASE("forward against the plain-loop references") { check_forward(ex, f, G); }
  SUBCASE("gradients against finite differences") { check_gradients_of(ex, f, G); }
}

}  // namespace op_cases
