// CPU references for test_op_cases_cuda.cu: the CPU executors of one group of the test registry,
// compiled once per part with -DOP_CASE_PART=0, 1 or 2, the parts of test_op_cases_cuda.cu.
#include "reference_cpu.hpp"
#include "../op_cases.hpp"

#ifndef OP_CASE_PART
#error "compile with -DOP_CASE_PART=0, 1 or 2"
#endif

namespace {
template <class M> std::unique_ptr<cuda_tests::reference_session::impl> cpu_reference() {
  return std::unique_ptr<cuda_tests::reference_session::impl>(new cuda_tests::cpu_session<M>());
}
using op_cases::case_group;
using op_cases::model;
template <case_group G, kiln::dtype T = kiln::dtype::f64> bool register_group(const char* name) {
  return cuda_tests::register_reference(name, cpu_reference<model<G, T, false>>);
}
#if OP_CASE_PART == 0
const bool registered = register_group<case_group::elementwise>("op_cases_elementwise") &&
                        register_group<case_group::elementwise, kiln::dtype::f32>("op_cases_elementwise_f32");
#elif OP_CASE_PART == 1
const bool registered = register_group<case_group::structural>("op_cases_structural") && register_group<case_group::window>("op_cases_window");
#else
const bool registered = register_group<case_group::convolution>("op_cases_convolution") && register_group<case_group::composite>("op_cases_composite");
#endif
}  // namespace
