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
// - Non-differentiable points use these conventions: relu'(0) = 0, abs'(0) = 0, sign' = 0;
//   minimum/maximum send the gradient to the operand the forward pass selected (the second on
//   ties); reduce_max/reduce_min split the gradient equally among tied extrema (as TF1 does).
// - stop_gradient(x) is an identity whose output is treated as a constant.
#pragma once
#include <array>
#include <vector>
#include "elementwise.hpp"
#include "indexing.hpp"
#include "layout.hpp"
#include "matmul.hpp"
#include "reduce.hpp"
#include "window.hpp"

namespace kiln {

// stop_gradient is a reshape to the same shape marked with this flag in node.k (reshape nodes
// built by reshape() always have k == 0, and reshape() never emits a same-shape node). Reusing
// op::reshape keeps the planner, every backend and describe() unchanged: the node is a free
// alias of its input's buffer; only gradients() looks at the flag.
inline constexpr std::int64_t stop_gradient_flag = 1;

constexpr bool is_stop_gradient(const node& n) { return n.kind == op::reshape && n.k == stop_gradient_flag; }

// custom_gradient's identity node: a same-shape reshape like stop_gradient, with this flag.
inline constexpr std::int64_t custom_gradient_flag = 2;

constexpr bool is_custom_gradient(const node& n) { return n.kind == op::reshape && n.k == custom_gradient_flag; }

constexpr tensor stop_gradient(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  node n;
  n.kind = op::reshape;
  n.type = x.type();
  n.out = x.shape();
  n.n_in = 1;
  n.in[0] = x.id;
  n.k = stop_gradient_flag;
  return x.g->add(n, loc);
}

namespace grad_detail {

using detail::loc_t;
using detail::no_loc;

// Shapes are taken by value throughout: adding a node may reallocate the node array that a
// reference from tensor::shape() points into.

constexpr shape keep_shape(shape s, int first, int last) {
  for (int d = first; d <= last; ++d) s.dim[d] = 1;
  return s;
}

constexpr axes axis_run(int first, int last) {
  axes ax;
  ax.all = false;
  ax.count = 0;
  for (int d = first; d <= last; ++d) ax.axis[ax.count++] = d;
  return ax;
}

// g (whose shape broadcasts to s) broadcast to s, as g + zeros: the zeros are an inline immediate,
// so this costs nothing beyond the fused loop that consumes it.
constexpr tensor broadcast_to(tensor g, shape s) {
  if (!g.valid() || g.shape() == s) return g;
  return add(g, g.g->fill(s, 0, g.type(), no_loc), no_loc);
}

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

// The number of elements reduce_mean averaged over dims [first, last] of s. A reduced kiln::batch
// dim makes it dynamic: it is then built in the graph as reduce_sum(ones[?]) (the batch size)
// times the static part, so reduce_mean over the batch differentiates correctly for any batch.
constexpr tensor reduced_count(graph& g, shape s, int first, int last, dtype t) {
  std::int64_t c = 1;
  bool dynamic = false;
  for (int d = first; d <= last; ++d) {
    if (s.dim[d] == batch) dynamic = true;
    else c *= s.dim[d];
  }
  if (!dynamic) return g.scalar(double(c), t, no_loc);
  tensor b = reduce_sum(g.fill(shape{batch}, 1, t, no_loc), axes{}, false, no_loc);
  return c == 1 ? b : mul(b, double(c), no_loc);
}

constexpr tensor permute(tensor x, const std::int64_t* p, int rank) {
  switch (rank) {
    case 2: return transpose(x, {int(p[0]), int(p[1])}, no_loc);
    case 3: return transpose(x, {int(p[0]), int(p[1]), int(p[2])}, no_loc);
    case 4: return transpose(x, {int(p[0]), int(p[1]), int(p[2]), int(p[3])}, no_loc);
    case 5: return transpose(x, {int(p[0]), int(p[1]), int(p[2]), int(p[3]), int(p[4])}, no_loc);
    case 6: return transpose(x, {int(p[0]), int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5])}, no_loc);
    default: return x;
  }
}

// op(a) op(b) for the operand ranks gradients produce, beyond what matmul() accepts:
// [M,K] x [B,K,N] is computed as (op(b)^T op(a)^T)^T. (dW = x^T g for x [?,K], a contraction over
// the dynamic batch dim, is an ordinary matmul.)
constexpr tensor mm(tensor a, tensor b, bool ta, bool tb) {
  if (!a.valid()) return a;
  if (!b.valid()) return b;
  const shape sa = a.shape(), sb = b.shape();
  if (sa.rank == 2 && sb.rank == 3) return transpose(mm(b, a, !tb, !ta), {0, 2, 1}, no_loc);
  return matmul(a, b, ta, tb, no_loc);
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

struct walker {
  graph& g;
  std::vector<int>& grads;      // accumulated upstream gradient per node, -1 when none
  const std::vector<char>& dep;  // node depends (differentiably) on some x

  // Adds contribution c to the gradient of node `id`, summed back to its shape if c was broadcast.
  constexpr void give(int id, tensor c) {
    if (!dep[std::size_t(id)] || !c.valid()) return;
    const shape target = g.at(id).out;
    c = reduce_to_shape(c, target);
    if (!c.valid()) return;
    int& slot = grads[std::size_t(id)];
    slot = slot < 0 ? c.id : add(tensor{&g, slot}, c, no_loc).id;
  }

  // The vector-Jacobian products, one per op: node i's upstream gradient gy to its inputs.
  constexpr void vjp(int i) {
    const node n = g.at(i);  // a copy: adding nodes may move the array
    const tensor gy{&g, grads[std::size_t(i)]};
    const tensor y{&g, i};
    const tensor x0{&g, n.in[0]}, x1{&g, n.in[1]};
    const bool d0 = n.n_in > 0 && dep[std::size_t(n.in[0])];
    const bool d1 = n.n_in > 1 && dep[std::size_t(n.in[1])];
    const bool d2 = n.n_in > 2 && dep[std::size_t(n.in[2])];
    switch (n.kind) {
      // ---- unary
      case op::neg: give(n.in[0], neg(gy, no_loc)); break;
      case op::abs: give(n.in[0], mul(gy, sign(x0, no_loc), no_loc)); break;
      case op::exp: give(n.in[0], mul(gy, y, no_loc)); break;
      case op::log: give(n.in[0], div(gy, x0, no_loc)); break;
      case op::sqrt: give(n.in[0], div(gy, mul(y, 2.0, no_loc), no_loc)); break;
      // d/dx x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2
      case op::rsqrt: give(n.in[0], mul(gy, mul(mul(y, square(y, no_loc), no_loc), -0.5, no_loc), no_loc)); break;
      case op::square: give(n.in[0], mul(gy, mul(x0, 2.0, no_loc), no_loc)); break;
      case op::tanh: give(n.in[0], mul(gy, sub(1.0, square(y, no_loc), no_loc), no_loc)); break;
      case op::sigmoid: give(n.in[0], mul(gy, mul(y, sub(1.0, y, no_loc), no_loc), no_loc)); break;
      // y > 0 exactly where x > 0 (NaN included: relu(NaN) is 0). Reading y rather than x leaves
      // relu the only reader of x, so that x need not be stored: relu fuses into its producer
      // (the bias add after a matmul) and the backward pass reads the one [batch, units] buffer.
      case op::relu: {
        // relu -> max_pool: fold the mask into the routing (window_geometry::positive_only).
        // A conv layer's relu runs on its [?,Ho·Wo,F] rows, so look through plain reshapes.
        auto unreshaped = [&](int id) {
          while (g.at(id).kind == op::reshape && g.at(id).k == 0) id = g.at(id).in[0];
          return id;
        };
        const node up = g.at(unreshaped(gy.id));
        if (up.kind == op::max_pool_grad && unreshaped(up.in[0]) == i && up.value == 0) {
          window_geometry geo = detail::geometry_of(up);
          geo.positive_only = true;
          give(n.in[0], reshape(detail::max_pool_grad(tensor{&g, up.in[0]}, tensor{&g, up.in[1]}, geo), y.shape(), no_loc));
        } else {
          give(n.in[0], where(greater(y, 0.0, no_loc), gy, 0.0, no_loc));
        }
        break;
      }
      case op::softplus: give(n.in[0], mul(gy, sigmoid(x0, no_loc), no_loc)); break;
      case op::sign: break;  // zero almost everywhere
      case op::cast:         // float -> float casts back; casts from or to integers carry nothing
        if (d0 && is_floating(n.type)) give(n.in[0], cast(gy, x0.type(), no_loc));
        break;
      // ---- binary (contributions are summed over broadcast dims in give)
      case op::add:
        if (d0) give(n.in[0], gy);
        if (d1) give(n.in[1], gy);
        break;
      case op::sub:
        if (d0) give(n.in[0], gy);
        if (d1) give(n.in[1], neg(gy, no_loc));
        break;
      case op::mul:
        if (d0) give(n.in[0], mul(gy, x1, no_loc));
        if (d1) give(n.in[1], mul(gy, x0, no_loc));
        break;
      case op::div:  // y = a / b: da = g / b, db = -g * y / b
        if (d0) give(n.in[0], div(gy, x1, no_loc));
        if (d1) give(n.in[1], neg(mul(gy, div(y, x1, no_loc), no_loc), no_loc));
        break;
      case op::pow:  // y = a^b: da = g b a^(b-1), db = g y log(a) (0 where a <= 0, as in TF)
        if (d0) give(n.in[0], mul(gy, mul(x1, pow(x0, sub(x1, 1.0, no_loc), no_loc), no_loc), no_loc));
        if (d1) {
          tensor la = where(greater(x0, 0.0, no_loc), log(x0, no_loc), 0.0, no_loc);
          give(n.in[1], mul(gy, mul(y, la, no_loc), no_loc));
        }
        break;
      case op::minimum:  // the forward pass picks a where a < b, else b
      case op::maximum: {  // ... and a where a > b, else b
        tensor pick_a = n.kind == op::minimum ? less(x0, x1, no_loc) : greater(x0, x1, no_loc);
        if (d0) give(n.in[0], where(pick_a, gy, 0.0, no_loc));
        if (d1) give(n.in[1], where(pick_a, 0.0, gy, no_loc));
        break;
      }
      case op::select:  // the condition carries nothing
        if (d1) give(n.in[1], where(x0, gy, 0.0, no_loc));
        if (d2) give(n.in[2], where(x0, 0.0, gy, no_loc));
        break;
      // ---- reductions over dims [a0, a1]
      case op::reduce_sum:
      case op::reduce_mean: {
        const int first = int(n.a[0]), last = int(n.a[1]);
        const shape xs = x0.shape();
        tensor gk = reshape(gy, keep_shape(xs, first, last), no_loc);
        if (n.kind == op::reduce_mean) gk = div(gk, reduced_count(g, xs, first, last, n.type), no_loc);
        give(n.in[0], broadcast_to(gk, xs));
        break;
      }
      case op::reduce_max:
      case op::reduce_min: {  // to the elements equal to the extremum, split equally among ties
        const int first = int(n.a[0]), last = int(n.a[1]);
        const shape xs = x0.shape();
        const shape ks = keep_shape(xs, first, last);
        tensor mask = cast(equal(x0, reshape(y, ks, no_loc), no_loc), n.type, no_loc);
        tensor ties = reduce_sum(mask, axis_run(first, last), true, no_loc);
        give(n.in[0], mul(mask, div(reshape(gy, ks, no_loc), ties, no_loc), no_loc));
        break;
      }
      // ---- matmul: C = op(A) op(B); shared weights ([B,M,K] x [K,N]) sum dB over the batch in give
      case op::matmul: {
        const bool ta = (n.k & 1) != 0, tb = (n.k & 2) != 0;
        // dB of shared weights B: one GEMM folding the batch into the rows (detail::folded_contraction)
        const bool shared_b = x1.valid() && x1.rank() == 2 && x0.rank() == 3 && detail::can_fold_rows(x0.shape(), gy.shape());
        if (!ta && !tb) {
          if (d0) give(n.in[0], mm(gy, x1, false, true));
          if (d1) give(n.in[1], shared_b ? detail::folded_contraction(x0, gy) : mm(x0, gy, true, false));
        } else if (!ta && tb && shared_b) {
          if (d0) give(n.in[0], mm(gy, x1, false, false));
          if (d1) give(n.in[1], detail::folded_contraction(gy, x0));
        } else if (ta && !tb) {  // also the folded contraction: C = A^T B over the rows of the batch
          if (d0) give(n.in[0], mm(x1, gy, false, true));
          if (d1) give(n.in[1], mm(x0, gy, false, false));
        } else if (!ta && tb) {
          if (d0) give(n.in[0], mm(gy, x1, false, false));
          if (d1) give(n.in[1], mm(gy, x0, true, false));
        } else {
          if (d0) give(n.in[0], mm(x1, gy, true, true));
          if (d1) give(n.in[1], mm(gy, x0, true, true));
        }
        break;
      }
      // ---- layout
      case op::reshape:
        if (is_custom_gradient(n)) {
          const int at = int(n.a[0]), stub = g.custom_rules[std::size_t(at)], count = g.custom_rules[std::size_t(at + 1)];
          for (int j = 0; j < count; ++j) {
            const int x = g.custom_rules[std::size_t(at + 2 + 2 * j)], dx = g.custom_rules[std::size_t(at + 3 + 2 * j)];
            if (dep[std::size_t(x)]) give(x, broadcast_to(substitute(g, stub, dx, gy.id), g.at(x).out));
          }
        } else if (!is_stop_gradient(n)) {
          give(n.in[0], reshape(gy, x0.shape(), no_loc));
        }
        break;
      case op::transpose: {
        std::int64_t inv[max_rank]{};
        for (int d = 0; d < n.out.rank; ++d) inv[n.a[d]] = d;
        give(n.in[0], permute(gy, inv, n.out.rank));
        break;
      }
      case op::slice: {  // pad back with zeros on both sides of the axis
        const int axis = int(n.k);
        const shape xs = x0.shape();
        const std::int64_t begin = n.a[0], end = begin + n.out.dim[axis], extent = xs.dim[axis];
        shape before = n.out, after = n.out;
        before.dim[axis] = begin;
        after.dim[axis] = extent - end;
        tensor lo = g.fill(before, 0, n.type, no_loc), hi = g.fill(after, 0, n.type, no_loc);
        if (begin == 0) give(n.in[0], concat({gy, hi}, axis, no_loc));
        else if (end == extent) give(n.in[0], concat({lo, gy}, axis, no_loc));
        else give(n.in[0], concat({lo, gy, hi}, axis, no_loc));
        break;
      }
      case op::concat: {
        const int axis = int(n.k);
        std::int64_t off = 0;
        for (int k = 0; k < n.n_in; ++k) {
          const std::int64_t len = g.at(n.in[k]).out.dim[axis];
          if (dep[std::size_t(n.in[k])]) give(n.in[k], slice(gy, axis, off, off + len, no_loc));
          off += len;
        }
        break;
      }
      // ---- gather: a scatter-add written as a one-hot product summed over the index dims.
      // With P = params.shape[:axis], I = the index dims in the output, R = params.shape[axis+1:]:
      // dparams[P, d, R] = sum_I g[P, I, 1, R] * one_hot(indices, depth)[.., I, d, 1...].
      case op::gather: {
        if (!d0) break;
        const int axis = int(n.k), bd = int(n.a[0]);
        const shape ps = x0.shape(), is = x1.shape(), gs = n.out;
        const std::int64_t depth = ps.dim[axis];
        const int ri = is.rank - bd, rest = ps.rank - axis - 1;
        if (gs.rank + 1 > max_rank) {
          g.fail_with("gradients", no_loc, "the gradient of gather needs rank ", gs.rank + 1, " (max ", max_rank, ")");
          break;
        }
        shape ge;  // gy with a unit dim where the gathered axis goes
        for (int d = 0; d < gs.rank + 1; ++d) {
          const int pos = axis + ri;
          ge.dim[ge.rank++] = d < pos ? gs.dim[d] : d == pos ? 1 : gs.dim[d - 1];
        }
        shape os;  // one_hot(indices) [is..., depth] laid out to broadcast against ge
        if (bd == 1) {
          os.dim[os.rank++] = is.dim[0];
          for (int d = 1; d < axis; ++d) os.dim[os.rank++] = 1;
          for (int d = 1; d < is.rank; ++d) os.dim[os.rank++] = is.dim[d];
        } else {
          for (int d = 0; d < is.rank; ++d) os.dim[os.rank++] = is.dim[d];
        }
        os.dim[os.rank++] = depth;
        for (int d = 0; d < rest; ++d) os.dim[os.rank++] = 1;
        tensor oh = reshape(one_hot(x1, depth, n.type, 1, 0, no_loc), os, no_loc);
        tensor prod = mul(reshape(gy, ge, no_loc), oh, no_loc);
        if (ri > 0) prod = reduce_sum(prod, axis_run(axis, axis + ri - 1), false, no_loc);
        give(n.in[0], prod);
        break;
      }
      // ---- windows: each op's adjoint is another op of the family (ops/window.hpp). max_pool's
      // routing depends on x only through which entry is the maximum, a piecewise-constant
      // choice, so max_pool_grad and max_pool_select are linear in g with zero derivative in x.
      case op::im2col: give(n.in[0], detail::col2im(gy, x0.shape(), detail::geometry_of(n))); break;
      case op::col2im: give(n.in[0], detail::im2col(gy, detail::geometry_of(n))); break;
      case op::max_pool: give(n.in[0], detail::max_pool_grad(x0, gy, detail::geometry_of(n))); break;
      case op::max_pool_grad: if (d1) give(n.in[1], detail::max_pool_select(x0, gy, detail::geometry_of(n))); break;
      case op::max_pool_select: if (d1) give(n.in[1], detail::max_pool_grad(x0, gy, detail::geometry_of(n))); break;
      // sources, comparisons, logical ops, argmax, uniform_hash, assign: no gradient
      default: break;
    }
  }
};

constexpr void backward(tensor y, const tensor* xs, std::size_t count, tensor dy, tensor* out, const loc_t& loc) {
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
    if (dep[std::size_t(i)] || !is_floating(n.type) || is_stop_gradient(n) || n.kind == op::assign) continue;
    if (is_custom_gradient(n)) {  // the gradient flows to the rule's xs only
      const int at = int(n.a[0]), count = g.custom_rules[std::size_t(at + 1)];
      for (int j = 0; j < count; ++j)
        if (dep[std::size_t(g.custom_rules[std::size_t(at + 2 + 2 * j)])]) dep[std::size_t(i)] = 1;
      continue;
    }
    for (int k = 0; k < n.n_in; ++k)
      if (dep[std::size_t(n.in[k])]) dep[std::size_t(i)] = 1;
  }
  std::vector<int> grads(std::size_t(top) + 1, -1);
  if (dep[std::size_t(top)]) grads[std::size_t(top)] = dy.valid() ? dy.id : g.fill(y.shape(), 1, y.type(), loc).id;
  walker w{g, grads, dep};
  for (int i = top; i >= lo && g.ok(); --i)
    if (dep[std::size_t(i)] && grads[std::size_t(i)] >= 0) w.vjp(i);
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
  g.custom_rules.push_back(stub.id);
  g.custom_rules.push_back(int(K));
  for (std::size_t j = 0; j < K; ++j) {
    shape b;
    if (!dxs[j].valid() || dxs[j].g != &g || dxs[j].type() != xs[j].type() || !broadcast_shapes(dxs[j].shape(), xs[j].shape(), b))
      return g.fail_with("custom_gradient", loc, "the VJP's result #", std::int64_t(j), " must be ", xs[j].type(), " ", xs[j].shape(),
                         " (or broadcast with it), got ", dxs[j].valid() ? dxs[j].type() : xs[j].type(), " ",
                         dxs[j].valid() ? dxs[j].shape() : shape{});
    g.custom_rules.push_back(xs[j].id);
    g.custom_rules.push_back(dxs[j].id);
  }
  node n;
  n.kind = op::reshape;
  n.type = y.type();
  n.out = y.shape();
  n.n_in = 1;
  n.in[0] = y.id;
  n.k = custom_gradient_flag;
  n.a[0] = at;
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
