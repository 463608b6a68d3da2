// MUST NOT COMPILE: [2,3] has 6 elements, [4,2] has 8.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {2, 3});
  g.output("r", reshape(x, {4, 2}));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
