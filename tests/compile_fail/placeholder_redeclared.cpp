// MUST NOT COMPILE: one placeholder name declared with two dtypes in one graph.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor a = g.placeholder("x", f32, {batch, 3});
  tensor b = g.placeholder("x", f64, {batch, 3});
  g.output("y", a * 2.0 + cast(b, f32));
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
