// Reductions. Any set of axes is lowered to reductions over contiguous axis runs, so every
// reduction node has the form [outer, reduced, inner] and one kernel per device covers them all.
#pragma once
#include <initializer_list>
#include "elementwise.hpp"

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
  n.a[0] = first;
  n.a[1] = last;
  n.k = keepdims ? 1 : 0;
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

}  // namespace kiln
