// MUST NOT COMPILE: one variable name declared with two shapes in one graph.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor a = g.variable("w", f32, {3, 4});
  tensor b = g.variable("w", f32, {4, 3});
  g.output("y", a * 2.0 + reduce_sum(b));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
