// The test registry (tests/op_cases.hpp) on the CPU executor, part 2: reductions, matmul, aliases,
// copies and gather against their plain-loop references and finite differences.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "op_cases_check.hpp"

TEST_CASE("op_cases.reductions_matmul_layout_indexing") { op_cases::check_group<op_cases::case_group::structural>(); }
