// Reductions. Any set of axes is lowered to reductions over contiguous axis runs, so every
// reduction node has the form [outer, reduced, inner] and one kernel per device covers them all.
#pragma once
#include <initializer_list>
#include "elementwise.hpp"
#include "layout.hpp"

namespace kiln {

struct axes {
  int count = 0;
  int axis[max_rank]{};
  bool all = true;
  constexpr axes() = default;
  constexpr axes(std::initializer_list<int> list) : all(false) {
    for (int a : list)
      if (count < max_rank) axis[count++] = a;
  }
  constexpr axes(int a) : count(1), all(false) { axis[0] = a; }
};

namespace detail {

constexpr tensor reduce_run(op o, tensor x, int first, int last, bool keepdims, const loc_t& loc) {
  const node& in = x.info();
  node n;
  n.kind = o;
  n.type = o == op::argmax ? dtype::i32 : in.type;
  n.n_in = 1;
  n.in[0] = x.id;
  reduce_attrs{first, last, keepdims}.store(n);
  shape out;
  for (int d = 0; d < in.out.rank; ++d) {
    bool reduced = d >= first && d <= last;
    if (!reduced) out.dim[out.rank++] = in.out.dim[d];
    else if (keepdims) out.dim[out.rank++] = 1;
  }
  n.out = out;
  return x.g->add(n, loc);
}

constexpr tensor reduce(op o, tensor x, axes ax, bool keepdims, const loc_t& loc) {
  if (!x.valid()) return invalid_of(x);
  graph& g = *x.g;
  const node& in = x.info();
  const int rank = in.out.rank;
  if (in.type == dtype::boolean) return g.fail_with(name_of(o), loc, "expects a numeric tensor, got bool ", in.out);
  bool reduced[max_rank]{};
  if (ax.all) {
    for (int d = 0; d < rank; ++d) reduced[d] = true;
  } else {
    for (int i = 0; i < ax.count; ++i) {
      int a = ax.axis[i] < 0 ? ax.axis[i] + rank : ax.axis[i];
      if (a < 0 || a >= rank) return g.fail_with(name_of(o), loc, "axis ", ax.axis[i], " is out of range for shape ", in.out);
      reduced[a] = true;
    }
  }
  if (rank == 0) return x;
  // Reduce the last run first so earlier axis numbers stay valid when dims are dropped.
  tensor cur = x;
  int d = rank - 1;
  int runs = 0;
  while (d >= 0) {
    if (!reduced[d]) { --d; continue; }
    int last = d;
    while (d >= 0 && reduced[d]) --d;
    if (o == op::argmax && (runs > 0 || last != d + 1))
      return g.fail_with("argmax", loc, "reduces exactly one axis, got several for shape ", in.out);
    cur = reduce_run(o, cur, d + 1, last, keepdims, loc);
    ++runs;
  }
  return cur;
}

}  // namespace detail

constexpr tensor reduce_sum(tensor x, axes ax = {}, bool keepdims = false, std::source_location loc = std::source_location::current()) {
  return detail::reduce(op::reduce_sum, x, ax, keepdims, loc);
}
constexpr tensor reduce_mean(tensor x, axes ax = {}, bool keepdims = false, std::source_location loc = std::source_location::current()) {
  return detail::reduce(op::reduce_mean, x, ax, keepdims, loc);
}
constexpr tensor reduce_max(tensor x, axes ax = {}, bool keepdims = false, std::source_location loc = std::source_location::current()) {
  return detail::reduce(op::reduce_max, x, ax, keepdims, loc);
}
constexpr tensor reduce_min(tensor x, axes ax = {}, bool keepdims = false, std::source_location loc = std::source_location::current()) {
  return detail::reduce(op::reduce_min, x, ax, keepdims, loc);
}
// Index of the first largest element along `axis`, as i32.
constexpr tensor argmax(tensor x, int axis = -1, std::source_location loc = std::source_location::current()) {
  return detail::reduce(op::argmax, x, axes{axis}, false, loc);
}

// ---- gradients ------------------------------------------------------------------------------------

namespace grad_detail {

using detail::no_loc;

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

// reduce_sum / reduce_mean: the upstream broadcast back over the reduced dims [first, last]
template <class W> constexpr void vjp_sum(W& w, bool mean) {
  const reduce_attrs r = reduce_attrs::of(w.n);
  const shape xs = w.x(0).shape();
  tensor gk = reshape(w.gy, keep_shape(xs, r.first, r.last), no_loc);
  if (mean) gk = div(gk, reduced_count(w.g, xs, r.first, r.last, w.n.type), no_loc);
  w.give(0, broadcast_to(gk, xs));
}

// reduce_max / reduce_min: to the elements equal to the extremum, split equally among ties (TF1)
template <class W> constexpr void vjp_extremum(W& w) {
  const reduce_attrs r = reduce_attrs::of(w.n);
  const tensor x = w.x(0);
  const shape ks = keep_shape(x.shape(), r.first, r.last);
  const tensor mask = cast(equal(x, reshape(w.y, ks, no_loc), no_loc), w.n.type, no_loc);
  const tensor ties = reduce_sum(mask, axis_run(r.first, r.last), true, no_loc);
  w.give(0, mul(mask, div(reshape(w.gy, ks, no_loc), ties, no_loc), no_loc));
}

}  // namespace grad_detail

KILN_VJP(reduce_sum) { grad_detail::vjp_sum(w, false); }
KILN_VJP(reduce_mean) { grad_detail::vjp_sum(w, true); }
KILN_VJP(reduce_max) { grad_detail::vjp_extremum(w); }
KILN_VJP(reduce_min) { grad_detail::vjp_extremum(w); }

}  // namespace kiln
