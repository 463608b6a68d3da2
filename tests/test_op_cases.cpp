// The test registry (tests/op_cases.hpp) on the CPU executor, part 1: the sources and the
// elementwise ops against their plain-loop references and, where they have a gradient, against
// finite differences; the registry's coverage of the op table; the gradient checker's own guard
// (a misspelled name in `only` is an error, not a silent pass). The other families are in
// test_op_cases_structural.cpp and test_op_cases_windows.cpp (one executor per TU keeps each
// under a minute of compile time).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "op_cases_check.hpp"

using namespace op_cases;

TEST_CASE("op_cases.elementwise_and_sources") { check_group<case_group::elementwise>(); }

TEST_CASE("op_cases.elementwise_f32_simd") {
  auto ex = kiln::compile<kiln::cpu>(op_cases::model<case_group::elementwise, kiln::f32>{});
  check_forward_f32(ex);
}

TEST_CASE("op_cases.registry_covers_the_table") {
  int cases_declared = 0, exemptions = 0;
  for (const op_case& c : cases) {
    if (c.is_case()) ++cases_declared;
    else {
      ++exemptions;
      CHECK_MESSAGE(c.exempt.size() > 10, name_of(c.id) << ": an exemption gives its reason");
    }
  }
  CHECK(std::size_t(cases_declared + exemptions) == kiln::op_count);
  CHECK(exemptions <= 3);  // placeholder, variable, assign: everything else is tested here
}

// check_gradients used to skip a name of `only` that matched no input, so a typo checked nothing.
TEST_CASE("op_cases.check_gradients_rejects_an_unknown_name") {
  std::vector<gc::input> ins = {{"x", {2}, {1, 2}}, {"w", {2}, {3, 4}}};
  CHECK(gc::unknown_names(ins, {"x", "w"}).empty());
  CHECK(gc::unknown_names(ins, {}).empty());
  const std::vector<std::string> unknown = gc::unknown_names(ins, {"x", "wx"});
  REQUIRE(unknown.size() == 1);
  CHECK(unknown[0] == "wx");
}
