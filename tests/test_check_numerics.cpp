// first_non_finite (train/check_numerics.hpp): the op that first produced a NaN or infinity, with
// the line of the user's code that created it; a NaN input is named as the placeholder; the store
// is left as it was although the probed step assigns.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <limits>
#include <vector>
#include "test_util.hpp"
#include <train/check_numerics.hpp>

using namespace kiln;

namespace {

// log(x * w - 1): finite for x * w > 1, NaN below. The counter assign proves the store is restored.
inline constexpr int log_line = __LINE__ + 8;
struct nan_probe {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 2});
    tensor w = g.variable("w", f32, {2}, init::constant(1));
    tensor calls = g.variable("calls", f64, {}, init::zeros());
    tensor scaled = x * w;
    tensor logged = log(scaled - g.scalar(1, f32));
    g.output("y", reduce_sum(logged * 2.0f));
    g.output("calls", assign_add(calls, g.scalar(1, f64)));
    return g;
  }
};

}  // namespace

TEST_CASE("check_numerics.names_the_op_and_line_that_made_the_first_nan") {
  auto exe = compile<cpu>(nan_probe{});
  std::vector<float> x{3, 3, 3, 0.5f};  // log(3 - 1) finite, log(0.5 - 1) NaN at element 3
  CHECK(std::isnan(exe.run({{"x", view(x, {2, 2})}}).get<float>("y").item()));
  const double calls = exe.variable<double>("calls").item();
  const auto origin = first_non_finite<nan_probe>({{"x", view(x, {2, 2})}}, exe.vars());
  REQUIRE(origin);
  CHECK(origin->op == "log");
  CHECK(origin->line == log_line);
  CHECK(origin->file == "test_check_numerics.cpp");
  CHECK(origin->element == 3);
  CHECK(std::isnan(origin->value));
  CHECK(origin->message.find("op 'log' at test_check_numerics.cpp:" + std::to_string(log_line)) != std::string::npos);
  CHECK(exe.variable<double>("calls").item() == calls);  // the probe's assign was undone
}

TEST_CASE("check_numerics.a_nan_input_is_named_as_its_placeholder") {
  auto exe = compile<cpu>(nan_probe{});
  std::vector<float> x{3, std::numeric_limits<float>::quiet_NaN(), 3, 3};
  const auto origin = first_non_finite<nan_probe>({{"x", view(x, {2, 2})}}, exe.vars());
  REQUIRE(origin);
  CHECK(origin->op == "placeholder");
  CHECK(origin->name == "x");
  CHECK(origin->element == 1);
}

TEST_CASE("check_numerics.all_finite_gives_nothing") {
  auto exe = compile<cpu>(nan_probe{});
  std::vector<float> x{3, 3, 3, 3};
  CHECK(!first_non_finite<nan_probe>({{"x", view(x, {2, 2})}}, exe.vars()));
}
