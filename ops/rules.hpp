// The two hooks an op fills in beside its builder (llm.c's pairing: an op's calculus and its
// lowering sit next to its shape rule, in ops/<family>.hpp):
//
// gradient_rule<op::x> (KILN_VJP): maps the upstream gradient of one node to its inputs. Rules are
// pure calculus; rewrites that make the result faster (folding a relu mask into max-pool routing,
// ...) run after differentiation, in ops/lowering.hpp. A rule is a template on the walker of
// ops/gradients.hpp, which offers:
//   w.n            the node (a copy), w.y its value, w.gy its upstream gradient (same shape)
//   w.x(k)         input k as a tensor;  w.needs(k): whether input k carries a gradient
//   w.give(k, t)   adds t to input k's gradient (summed back over broadcast dims)
//   w.g            the graph being extended
//
//   KILN_VJP(exp) { w.give(0, w.gy * w.y); }
//
// lowering_rule<op::x> (KILN_LOWER), composite ops only: the primitive graph that replaces node
// n (whose inputs index g) when ops/lowering.hpp lowers the model; it returns the replacement.
// A composite whose op-table gradient is `decompose` is differentiated through this graph.
//
//   KILN_LOWER(softmax) { return exp(log_softmax_parts(...)); }
//
// The op table (graph/op_table.hpp) says which hooks an op has: an op marked `rule` without a
// gradient_rule, or a composite without a lowering_rule, does not compile (the error names the
// op); a gradient that reaches an op marked `none` is a graph error naming the op and the line
// that built it.
#pragma once
#include "../graph/graph.hpp"
#include "../graph/op_table.hpp"

namespace kiln {

template <op O> struct gradient_rule;  // specialized with KILN_VJP beside each op's builder
template <op O> struct lowering_rule;  // specialized with KILN_LOWER beside each composite's builder

#define KILN_VJP(OP)                                    \
  template <> struct gradient_rule<op::OP> {            \
    template <class W> static constexpr void vjp(W& w); \
  };                                                    \
  template <class W> constexpr void gradient_rule<op::OP>::vjp([[maybe_unused]] W& w)

#define KILN_LOWER(OP)                                                 \
  template <> struct lowering_rule<op::OP> {                           \
    static constexpr tensor lower(graph& g, const node& n);            \
  };                                                                   \
  constexpr tensor lowering_rule<op::OP>::lower([[maybe_unused]] graph& g, [[maybe_unused]] const node& n)

}  // namespace kiln
