// MUST NOT COMPILE: [2,3] + [4,3] do not broadcast.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 3});
  tensor b = g.placeholder("b", f32, {4, 3});
  g.output("c", a + b);
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
