// MUST NOT COMPILE: a backend without a kernel for a group kind the plan needs. The toy backend
// below has only the fused elementwise kernel; the graph's reduce_sum is a reduction group, so
// the shared walk (runtime/binding.hpp) names the backend and the kind.
#include <kiln.hpp>
using namespace kiln;
constexpr auto toy_model = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 3});
  g.output("y", reduce_sum(x * 2.0, 1));
  return g;
};
struct toy_kernels {
  static constexpr std::string_view backend_name = "toy";
  template <int G> void run(group_tag<group_kind::elementwise>, group_index<G>) {}
};
int main() {
  toy_kernels k;
  run_schedule<program<decltype(toy_model)>>(k);
}
