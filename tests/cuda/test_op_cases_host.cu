// Runs without a GPU: the test registry (tests/op_cases.hpp) through the CUDA executor's generated
// code on the host (expression_host.cuh): every elementwise case, in f64 and in the f32 pass, and
// every window case, against the CPU executor. A TU of its own: with test_expression_host.cu's
// models it would take 2 GB.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "expression_host.cuh"
#include "op_case_feeds.hpp"

// Coverage "at least one output": the registry's models mix in groups the host cannot run (their
// GPU runs are in the cuda executable); the outputs that can be emulated are all compared.
TEST_CASE("cuda.expression_host.op_cases") {
  const cuda_tests::coverage some{.every_output = false};
  using op_cases::case_group;
  using op_cases::model;
  const cuda_tests::op_case_feeds wide = cuda_tests::op_case_feeds_of(case_group::elementwise, false);
  cuda_tests::check_model("op_cases_elementwise", model<case_group::elementwise, kiln::dtype::f64, false>{}, wide.span(), 1e-12, some);
  const cuda_tests::op_case_feeds simd = cuda_tests::op_case_feeds_of(case_group::elementwise, true);
  cuda_tests::check_model("op_cases_elementwise_f32", model<case_group::elementwise, kiln::dtype::f32, false>{}, simd.span(), 1e-5, some);
  const cuda_tests::op_case_feeds windows = cuda_tests::op_case_feeds_of(case_group::window, false);
  cuda_tests::check_model("op_cases_window", model<case_group::window, kiln::dtype::f64, false>{}, windows.span(), 1e-12, some);
}
