// MUST NOT COMPILE: a placeholder name of 69 characters; names hold at most 63, and a longer one
// is a builder error rather than a silent truncation that could merge two names into one.
#include <kiln.hpp>
using namespace kiln;
constexpr auto bad_graph = [] {
  graph g;
  tensor x = g.placeholder("input_features_of_the_first_encoder_block_before_any_normalization_xx", f32, {batch, 3});
  g.output("y", x * 2.f);
  return g;
};
int main() { auto ex = compile<cpu>(bad_graph); }
