// MUST COMPILE: the same kind of graph without the mistakes, so that a failure of the other
// cases is due to their graph and not to the flags or includes.
#include <kiln.hpp>
using namespace kiln;
constexpr auto good_graph = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 3});
  tensor b = g.placeholder("b", f32, {1, 3});
  tensor v = g.variable("v", f32, {2, 3});
  g.output("c", reduce_sum(reshape(a + b, {3, 2}), 1));
  g.output("m", matmul(a, transpose(a)));
  g.output("v", assign(v, a * 2.0));
  return g;
};
int main() { auto ex = compile<cpu>(good_graph); }
