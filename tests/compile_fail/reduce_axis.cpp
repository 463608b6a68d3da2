// MUST NOT COMPILE: axis 2 of a rank-2 tensor.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {2, 3});
  g.output("s", reduce_sum(x, 2));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
