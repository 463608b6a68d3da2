// The test registry (tests/op_cases.hpp) on the CPU executor, part 3: the window family and the
// composites (conv2d and its adjoints, pooling, batch norm, softmax, fully connected) against their
// plain-loop references and finite differences.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "op_cases_check.hpp"

TEST_CASE("op_cases.windows") { op_cases::check_group<op_cases::case_group::window>(); }
TEST_CASE("op_cases.convolutions") { op_cases::check_group<op_cases::case_group::convolution>(); }
TEST_CASE("op_cases.composites") { op_cases::check_group<op_cases::case_group::composite>(); }
