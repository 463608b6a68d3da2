// Lowering: the passes that turn the graph a model function returns (after differentiation) into
// the graph the planner schedules. The model's graph keeps the ops the user wrote (what describe()
// shows as the model and what exporters walk); lowering rewrites them into kernels' ops:
//   1. fold_relu_masks: where(relu(h) > 0, max_pool_grad(relu(h), g), 0), the calculus of a relu
//      feeding a max pool, becomes max_pool_grad(relu(h), g) routing only through positive
//      maxima: relu'(h) = 0 exactly where the maximum it routes to is 0, so the mask needs no pass
//      of its own over the image.
//   2. expand_composites: every composite op (conv2d, avg_pool2d, batch_norm, softmax, dense, ...)
//      replaced by its lowering_rule's primitive graph. Where differentiation already built that
//      graph (a composite differentiated through its lowering), CSE makes the two one.
// Each pass is one linear walk (graph/rewrite.hpp) that also drops dead nodes.
#pragma once
#include "../graph/rewrite.hpp"
#include "conv.hpp"
#include "fully_connected.hpp"
#include "layout.hpp"
#include "normalization.hpp"
#include "pool.hpp"
#include "softmax.hpp"
#include "window.hpp"

namespace kiln {

namespace lowering_detail {

constexpr bool is_scalar_zero(const node& n) { return (n.kind == op::scalar || n.kind == op::fill) && immediate_attrs::of(n).value == 0; }

// select(greater(y, 0), G, 0) where y is a relu and G (through reshapes) routes an upstream
// gradient to the maxima of y: the relu's mask folded into the routing.
constexpr tensor fold_relu_mask(graph& g, const node& n) {
  if (n.kind != op::select || !is_scalar_zero(g.at(n.in[2]))) return g.emit(n);
  const node& test = g.at(n.in[0]);
  if (test.kind != op::greater || !is_scalar_zero(g.at(test.in[1])) || g.at(test.in[0]).kind != op::relu) return g.emit(n);
  const int y = test.in[0];
  const node routing = g.at(through_reshapes(g, n.in[1]));
  if (routing.kind != op::max_pool_grad || through_reshapes(g, routing.in[0]) != y) return g.emit(n);
  window_geometry geo = window_geometry::of(routing);
  if (geo.positive_only) return g.emit(n);
  geo.positive_only = true;
  node folded = routing;
  geo.store(folded);
  const tensor r = g.emit(folded);
  if (r.shape() == n.out) return r;
  return reshape(r, n.out, detail::no_loc);
}

template <op O> constexpr tensor expand(graph& g, const node& n) {
  if constexpr (is_composite(O)) {
    static_assert(requires { lowering_rule<O>::lower; }, "kiln: a composite op needs KILN_LOWER beside its builder");
    return lowering_rule<O>::lower(g, n);
  } else {
    return g.emit(n);
  }
}

// Dispatch over the op table: a composite's lowering_rule, or the node itself.
constexpr tensor expand_composite(graph& g, const node& n) {
  switch (n.kind) {
#define KILN_OP_EXPAND_CASE(name, ...) \
  case op::name: return expand<op::name>(g, n);
    KILN_OP_TABLE(KILN_OP_EXPAND_CASE)
#undef KILN_OP_EXPAND_CASE
    case op::count_: break;
  }
  return g.emit(n);
}

}  // namespace lowering_detail

constexpr graph fold_relu_masks(const graph& g) { return rewrite_graph(g, lowering_detail::fold_relu_mask); }
constexpr graph expand_composites(const graph& g) { return rewrite_graph(g, lowering_detail::expand_composite); }

// The whole lowering, in order.
constexpr graph lower(const graph& model) { return expand_composites(fold_relu_masks(model)); }

}  // namespace kiln
