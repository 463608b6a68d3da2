// MUST NOT COMPILE: [2,3] x [4,5], inner dimensions 3 and 4 differ.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 3});
  tensor b = g.placeholder("b", f32, {4, 5});
  g.output("c", matmul(a, b));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
