// MUST NOT COMPILE: two assigns to one variable in one graph (the planner rejects it).
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor v = g.variable("v", f32, {3});
  g.output("a", assign(v, 1.0));
  g.output("b", assign(v, 2.0));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
