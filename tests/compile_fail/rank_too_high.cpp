// MUST NOT COMPILE: a variable of rank 7; kiln's maximum rank is 6, and a larger shape is a
// builder error rather than dims silently dropped.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor v = g.variable("v", f32, {2, 2, 2, 2, 2, 2, 2});
  g.output("y", v * 2.f);
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
