// Reverse-mode automatic differentiation as a graph-to-graph transformation (TF1 tf.gradients).
// gradients(y, {x0, x1, ...}) runs in constant evaluation like every other builder function: it
// walks the nodes from y back to the earliest x in reverse index order (the array order is a
// topological order), accumulates the upstream gradient of every node (summing over consumers),
// and emits the gradient computation with the ordinary builder functions. The result is plain
// graph nodes, fused and planned like the forward pass; gradients of gradients work the same way.
//
// Semantics:
// - y must be floating. A non-scalar y gets an implicit upstream of ones (d sum(y) / dx), or the
//   upstream `dy` when one is given (a vector-Jacobian product).
// - Only floating values carry gradients: integer and bool paths (casts to integers, comparisons,
//   argmax, logical ops, gather indices) contribute nothing. uniform_hash (random numbers) has
//   integer operands, so random tensors are constants to gradients.
// - A gradient w.r.t. a tensor y does not depend on (or a non-floating x) is a zeros tensor of x's
//   shape and dtype (TF returns None; a zeros tensor keeps the result usable as a value).
// - Every op's VJP sits beside its builder (KILN_VJP in ops/<family>.hpp, see
//   ops/rules.hpp for the conventions at non-differentiable points); this file walks the
//   graph and dispatches on the op table. An op the table marks `none` (assign) that a gradient
//   reaches is a graph error naming it and the line that built it.
// - stop_gradient(x) is an identity whose output is treated as a constant.
#pragma once
#include <array>
#include <vector>
#include "conv.hpp"
#include "fully_connected.hpp"
#include "elementwise.hpp"
#include "indexing.hpp"
#include "layout.hpp"
#include "matmul.hpp"
#include "normalization.hpp"
#include "pool.hpp"
#include "reduce.hpp"
#include "rules.hpp"
#include "softmax.hpp"
#include "window.hpp"

namespace kiln {

namespace grad_detail {

using detail::loc_t;
using detail::no_loc;

// Shapes are taken by value throughout: adding a node may reallocate the node array that a
// reference from tensor::shape() points into.

// Sums g over the dims that were broadcast to produce it from a value of shape s: leading extra
// dims and dims where s has extent 1. The reductions keep dims, then one free reshape drops the
// leading ones. A leading kiln::batch dim is reduced like any other (a reduction over the dynamic
// dim yields a static extent of 1), so [?,N] + [N] sums back to [N].
constexpr tensor reduce_to_shape(tensor g, shape s) {
  if (!g.valid() || g.shape() == s) return g;
  const shape gs = g.shape();
  const int lead = gs.rank - s.rank;
  if (lead < 0) return g.g->fail_with("gradients", no_loc, "cannot sum a gradient of shape ", gs, " to shape ", s);
  axes ax;
  ax.all = false;
  ax.count = 0;
  for (int d = 0; d < gs.rank; ++d)
    if (d < lead || (s.dim[d - lead] == 1 && gs.dim[d] != 1)) ax.axis[ax.count++] = d;
  tensor r = ax.count > 0 ? reduce_sum(g, ax, true, no_loc) : g;
  return reshape(r, s, no_loc);
}

// The subgraph that computes `target` rebuilt with node `stub` replaced by `replacement`: every
// node between them that depends on the stub is re-added with remapped inputs (the builder's CSE
// returns existing nodes where nothing changed). This is how a custom gradient's VJP, written
// against a stand-in upstream, is applied to the real upstream of each gradients() call.
constexpr tensor substitute(graph& g, int stub, int target, int replacement) {
  if (target < stub) return tensor{&g, target};
  std::vector<int> map(std::size_t(target - stub) + 1);
  map[0] = replacement;
  for (int i = stub + 1; i <= target; ++i) {
    node n = g.at(i);
    bool changed = false;
    for (int k = 0; k < n.n_in; ++k)
      if (n.in[k] >= stub && map[std::size_t(n.in[k] - stub)] != n.in[k]) {
        n.in[k] = map[std::size_t(n.in[k] - stub)];
        changed = true;
      }
    map[std::size_t(i - stub)] = changed ? g.add(n, no_loc).id : i;
  }
  return tensor{&g, map[std::size_t(target - stub)]};
}

}  // namespace grad_detail

// custom_gradient (below): the user's VJP graph, with its stand-in upstream replaced by the
// upstream of this gradients() call.
KILN_VJP(custom_gradient) {
  const custom_rule rule = w.g.custom_rules[std::size_t(custom_gradient_attrs::of(w.n).rule)];
  for (std::size_t j = 0; j < rule.xs.size(); ++j) {
    const int x = rule.xs[j];
    if (w.dep[std::size_t(x)])
      w.give_node(x, grad_detail::broadcast_to(grad_detail::substitute(w.g, rule.upstream, rule.dxs[j], w.gy.id), w.g.at(x).out));
  }
}

namespace grad_detail {

// partial: the derivatives of y with respect to each x with the others held fixed (a
// composite's inputs, which may depend on each other), rather than total derivatives.
constexpr void backward(tensor y, const tensor* xs, std::size_t count, tensor dy, tensor* out, const loc_t& loc, bool partial = false);

// Walks the nodes from y back to the earliest x, handing each node's upstream gradient to the
// gradient rule of its op (the interface rules see is described in ops/rules.hpp).
struct walker {
  graph& g;
  std::vector<int>& grads;       // accumulated upstream gradient per node, -1 when none
  const std::vector<char>& dep;  // node depends (differentiably) on some x
  node n{};                      // the node being differentiated (a copy: adding nodes may move the array)
  tensor y{}, gy{};
  int id = -1;

  constexpr tensor x(int k) const { return tensor{&g, n.in[k]}; }
  constexpr bool needs(int k) const { return k < n.n_in && dep[std::size_t(n.in[k])]; }

  // Adds contribution c to the gradient of node `to`, summed back to its shape if c was broadcast.
  constexpr void give_node(int to, tensor c) {
    if (!dep[std::size_t(to)] || !c.valid()) return;
    const shape target = g.at(to).out;
    c = reduce_to_shape(c, target);
    if (!c.valid()) return;
    int& slot = grads[std::size_t(to)];
    slot = slot < 0 ? c.id : add(tensor{&g, slot}, c, no_loc).id;
  }
  constexpr void give(int k, tensor c) { give_node(n.in[k], c); }

  // An op the table declares non-differentiable, reached by a gradient.
  constexpr void no_rule() {
    message_text m;
    m.append("gradients: no gradient rule for '").append(name_of(n.kind)).append("' ").append(name_of(n.type)).append(" ");
    append_shape(m, n.out);
    m.append(" (built at ").append(graph::basename(n.file)).append(":").append(std::int64_t(n.line));
    m.append("), and the gradient must pass through it");
    g.fail(m);
  }

  // A composite differentiated through its lowering: the primitive graph the lowering pass will
  // replace it with is built here (the builder's CSE makes it the very nodes lowering produces),
  // and the upstream gradient is pulled back through it to the composite's inputs.
  constexpr void through_lowering(tensor lowered) {
    if (!g.ok()) return;
    tensor xs[max_inputs]{}, dxs[max_inputs]{};
    for (int k = 0; k < n.n_in; ++k) xs[k] = x(k);
    backward(lowered, xs, std::size_t(n.n_in), gy, dxs, no_loc, /*partial=*/true);
    for (int k = 0; k < n.n_in && g.ok(); ++k)
      if (needs(k)) give(k, dxs[k]);
  }

  template <op O> constexpr void apply() {
    constexpr grad_kind kind = gradient_kind_of(O);
    if constexpr (kind == grad_kind::rule) {
      static_assert(requires { gradient_rule<O>::template vjp<walker>; },
                    "kiln: the op table says this op has a gradient rule; write KILN_VJP(op) beside its builder");
      gradient_rule<O>::vjp(*this);
    } else if constexpr (kind == grad_kind::decompose) {
      static_assert(is_composite(O), "kiln: only a composite op can be differentiated through its lowering");
      through_lowering(lowering_rule<O>::lower(g, n));
    } else if constexpr (kind == grad_kind::none) {
      for (int k = 0; k < n.n_in; ++k)
        if (needs(k)) return no_rule();  // (sources have no inputs: nothing to pass on)
    }  // zero: contributes nothing (piecewise constant, or integer/bool valued)
  }

  // Dispatch over the op table: every op is a case, so none can be forgotten.
  constexpr void vjp(int i) {
    id = i;
    n = g.at(i);
    y = tensor{&g, i};
    gy = tensor{&g, grads[std::size_t(i)]};
    switch (n.kind) {
#define KILN_OP_VJP_CASE(name, ...) \
  case op::name: apply<op::name>(); break;
      KILN_OP_TABLE(KILN_OP_VJP_CASE)
#undef KILN_OP_VJP_CASE
      case op::count_: break;
    }
  }
};

constexpr void backward(tensor y, const tensor* xs, std::size_t count, tensor dy, tensor* out, const loc_t& loc, bool partial) {
  for (std::size_t j = 0; j < count; ++j) out[j] = tensor{y.g, -1};
  if (!y.valid()) return;
  graph& g = *y.g;
  for (std::size_t j = 0; j < count; ++j)
    if (!xs[j].valid() || xs[j].g != &g) {
      if (xs[j].valid()) g.fail_with("gradients", loc, "x #", std::int64_t(j), " belongs to another graph");
      return;
    }
  if (!is_floating(y.type())) {
    g.fail_with("gradients", loc, "y must be f32 or f64, got ", y.type(), " ", y.shape());
    return;
  }
  if (dy.valid() && (dy.g != &g || dy.type() != y.type() || !(dy.shape() == y.shape()))) {
    g.fail_with("gradients", loc, "dy must match y, ", y.type(), " ", y.shape(), ", got ", dy.type(), " ", dy.shape());
    return;
  }
  if (!g.ok()) return;
  const int top = y.id;
  std::vector<char> dep(std::size_t(top) + 1, 0);
  int lo = top + 1;
  for (std::size_t j = 0; j < count; ++j)
    if (xs[j].id <= top && is_floating(xs[j].type())) {
      dep[std::size_t(xs[j].id)] = 1;
      if (xs[j].id < lo) lo = xs[j].id;
    }
  for (int i = lo; i <= top; ++i) {
    const node& n = g.at(i);
    // piecewise-constant ops (stop_gradient, sign, ...) and integer or bool values carry nothing
    if (dep[std::size_t(i)] || !is_floating(n.type) || gradient_kind_of(n.kind) == grad_kind::zero) continue;
    if (n.kind == op::custom_gradient) {  // the gradient flows to the rule's xs only
      for (int x : g.custom_rules[std::size_t(custom_gradient_attrs::of(n).rule)].xs)
        if (dep[std::size_t(x)]) dep[std::size_t(i)] = 1;
      continue;
    }
    for (int k = 0; k < n.n_in; ++k)
      if (dep[std::size_t(n.in[k])]) dep[std::size_t(i)] = 1;
  }
  std::vector<int> grads(std::size_t(top) + 1, -1);
  if (dep[std::size_t(top)]) grads[std::size_t(top)] = dy.valid() ? dy.id : g.fill(y.shape(), 1, y.type(), loc).id;
  walker w{g, grads, dep, {}, {}, {}, -1};
  std::vector<char> is_x(partial ? std::size_t(top) + 1 : 0, 0);
  if (partial)
    for (std::size_t j = 0; j < count; ++j)
      if (xs[j].id <= top) is_x[std::size_t(xs[j].id)] = 1;
  for (int i = top; i >= lo && g.ok(); --i)
    if (dep[std::size_t(i)] && grads[std::size_t(i)] >= 0 && !(partial && is_x[std::size_t(i)])) w.vjp(i);
  if (!g.ok()) return;
  for (std::size_t j = 0; j < count; ++j) {
    const int id = xs[j].id;
    // x that y does not depend on (or a non-floating x): a documented zero, not an error.
    out[j] = id <= top && grads[std::size_t(id)] >= 0 ? tensor{&g, grads[std::size_t(id)]} : g.fill(xs[j].shape(), 0, xs[j].type(), loc);
  }
}

}  // namespace grad_detail

// TF's tf.custom_gradient: a value equal to y whose gradient with respect to xs[j] is
// vjp(dy)[j], where dy is the upstream gradient of y. vjp is any constexpr callable taking the
// upstream tensor and returning std::array<tensor, K> (it may capture y and xs); a result that
// broadcasts with xs[j] is summed or broadcast to xs[j]'s shape, like a broadcast op's. It runs once,
// here, against a stand-in upstream; each gradients() call substitutes its real upstream.
// Gradients reach only xs (not other inputs of y's computation), and the VJP graph is ordinary
// graph nodes, so gradients of gradients differentiate it with the usual rules.
//   tensor y = custom_gradient(log1p(exp(x)), {x}, [=](tensor dy) { return std::array{dy * sigmoid(x)}; });
template <std::size_t K, class Vjp>
constexpr tensor custom_gradient(tensor y, const tensor (&xs)[K], Vjp vjp, std::source_location loc = std::source_location::current()) {
  if (!y.valid()) return detail::invalid_of(y);
  graph& g = *y.g;
  for (std::size_t j = 0; j < K; ++j)
    if (!xs[j].valid() || xs[j].g != &g) {
      if (xs[j].valid()) g.fail_with("custom_gradient", loc, "x #", std::int64_t(j), " belongs to another graph");
      return tensor{&g, -1};
    }
  if (!is_floating(y.type())) return g.fail_with("custom_gradient", loc, "y must be f32 or f64, got ", y.type(), " ", y.shape());
  const int at = int(g.custom_rules.size());
  message_text stub_name;
  stub_name.append("~custom_gradient/upstream/").append(std::int64_t(at));
  const tensor stub = g.placeholder(stub_name.view(), y.type(), y.shape(), loc);
  const std::array<tensor, K> dxs = vjp(stub);
  if (!g.ok()) return tensor{&g, -1};
  custom_rule rule;
  rule.upstream = stub.id;
  for (std::size_t j = 0; j < K; ++j) {
    shape b;
    if (!dxs[j].valid() || dxs[j].g != &g || dxs[j].type() != xs[j].type() || !broadcast_shapes(dxs[j].shape(), xs[j].shape(), b))
      return g.fail_with("custom_gradient", loc, "the VJP's result #", std::int64_t(j), " must be ", xs[j].type(), " ", xs[j].shape(),
                         " (or broadcast with it), got ", dxs[j].valid() ? dxs[j].type() : xs[j].type(), " ",
                         dxs[j].valid() ? dxs[j].shape() : shape{});
    rule.xs.push_back(xs[j].id);
    rule.dxs.push_back(dxs[j].id);
  }
  g.custom_rules.push_back(rule);
  node n;
  n.kind = op::custom_gradient;
  n.type = y.type();
  n.out = y.shape();
  n.n_in = 1;
  n.in[0] = y.id;
  custom_gradient_attrs{at}.store(n);
  return g.add(n, loc);
}

// d sum(y * dy) / d xs (dy defaults to ones of y's shape). Usable in a constexpr model:
//   auto [dw, db] = gradients(loss, {w, b});
template <std::size_t K>
constexpr std::array<tensor, K> gradients(tensor y, const tensor (&xs)[K], tensor dy = tensor{},
                                          std::source_location loc = std::source_location::current()) {
  std::array<tensor, K> out{};
  grad_detail::backward(y, xs, K, dy, out.data(), loc);
  return out;
}
template <std::size_t K>
constexpr std::array<tensor, K> gradients(tensor y, const std::array<tensor, K>& xs, tensor dy = tensor{},
                                          std::source_location loc = std::source_location::current()) {
  std::array<tensor, K> out{};
  grad_detail::backward(y, xs.data(), K, dy, out.data(), loc);
  return out;
}
constexpr tensor gradient(tensor y, tensor x, tensor dy = tensor{}, std::source_location loc = std::source_location::current()) {
  tensor out{};
  grad_detail::backward(y, &x, 1, dy, &out, loc);
  return out;
}

}  // namespace kiln
