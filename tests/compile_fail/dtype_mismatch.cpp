// MUST NOT COMPILE: f32 + i32 (no implicit promotion; cast first).
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {3});
  tensor b = g.placeholder("b", i32, {3});
  g.output("c", a + b);
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
