// MUST NOT COMPILE: only variables can be assigned.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {3});
  g.output("y", assign(x, x * 2.0));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
