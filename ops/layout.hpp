// Layout ops. reshape and stop_gradient are free (views of their input's buffer); transpose, slice
// and concat copy.
#pragma once
#include <initializer_list>
#include "elementwise.hpp"

namespace kiln {

// `s` may use kiln::batch as its leading dim only if `x` has a batch dim; the static element
// counts must agree.
constexpr tensor reshape(tensor x, shape s, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const node& in = x.info();
  if (!x.g->check_shape("reshape", "", s, loc)) return detail::invalid_of(x);
  for (int i = 1; i < s.rank; ++i)
    if (s.dim[i] == batch) return x.g->fail_with("reshape", loc, "only the leading dim of ", s, " may be kiln::batch");
  if (s.dynamic() != in.out.dynamic() || s.static_elements() != in.out.static_elements())
    return x.g->fail_with("reshape", loc, "cannot reshape ", in.out, " to ", s);
  if (in.out == s) return x;
  node n;
  n.kind = op::reshape;
  n.type = in.type;
  n.out = s;
  n.n_in = 1;
  n.in[0] = x.id;
  return x.g->add(n, loc);
}

// An identity whose output gradients treat as a constant (a free alias of x's buffer).
constexpr tensor stop_gradient(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  node n;
  n.kind = op::stop_gradient;
  n.type = x.type();
  n.out = x.shape();
  n.n_in = 1;
  n.in[0] = x.id;
  return x.g->add(n, loc);
}

// [d0, d1, ...] -> [d0, d1 * d2 * ...]
constexpr tensor flatten(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const shape& s = x.shape();
  if (s.rank < 2) return x;
  std::int64_t rest = 1;
  for (int i = 1; i < s.rank; ++i) rest *= s.dim[i];
  return reshape(x, shape{s.dim[0], rest}, loc);
}

constexpr tensor expand_dims(tensor x, int axis, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const shape& s = x.shape();
  if (axis < 0) axis += s.rank + 1;
  if (axis < 0 || axis > s.rank || s.rank >= max_rank || (axis == 0 && s.dynamic()))
    return x.g->fail_with("expand_dims", loc, "axis ", axis, " is invalid for shape ", s);
  shape out;
  out.rank = s.rank + 1;
  for (int i = 0, j = 0; i < out.rank; ++i) out.dim[i] = i == axis ? 1 : s.dim[j++];
  return reshape(x, out, loc);
}

constexpr tensor transpose(tensor x, std::initializer_list<int> perm, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const shape& s = x.shape();
  node n;
  n.kind = op::transpose;
  n.type = x.type();
  n.n_in = 1;
  n.in[0] = x.id;
  n.out.rank = s.rank;
  transpose_attrs t;
  t.rank = s.rank;
  bool seen[max_rank]{};
  int i = 0;
  for (int p : perm) {
    if (i >= s.rank || p < 0 || p >= s.rank || seen[p])
      return x.g->fail_with("transpose", loc, "invalid permutation for shape ", s);
    seen[p] = true;
    t.perm[i] = p;
    n.out.dim[i] = s.dim[p];
    ++i;
  }
  if (i != s.rank) return x.g->fail_with("transpose", loc, "permutation has ", i, " entries for shape ", s);
  if (s.dynamic() && t.perm[0] != 0) return x.g->fail_with("transpose", loc, "the batch dim of ", s, " must stay first");
  bool identity = true;
  for (int d = 0; d < s.rank; ++d) identity = identity && t.perm[d] == d;
  if (identity) return x;
  t.store(n);
  return x.g->add(n, loc);
}

// Reverses the last two dims.
constexpr tensor transpose(tensor x, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const int r = x.rank();
  if (r < 2) return x;
  if (r == 2) return transpose(x, {1, 0}, loc);
  if (r == 3) return transpose(x, {0, 2, 1}, loc);
  return x.g->fail_with("transpose", loc, "give a permutation for rank ", r);
}

// x[begin:end] along `axis` (python semantics for negative indices, static bounds).
constexpr tensor slice(tensor x, int axis, std::int64_t begin, std::int64_t end, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const shape& s = x.shape();
  if (axis < 0) axis += s.rank;
  if (axis < 0 || axis >= s.rank) return x.g->fail_with("slice", loc, "axis ", axis, " is out of range for ", s);
  if (s.dim[axis] == batch) return x.g->fail_with("slice", loc, "cannot slice the batch dim of ", s);
  const std::int64_t extent = s.dim[axis];
  if (begin < 0) begin += extent;
  if (end < 0) end += extent;
  if (begin < 0 || end > extent || begin >= end)
    return x.g->fail_with("slice", loc, "range [", begin, ":", end, ") is empty or outside axis ", axis, " of ", s);
  if (begin == 0 && end == extent) return x;
  node n;
  n.kind = op::slice;
  n.type = x.type();
  n.n_in = 1;
  n.in[0] = x.id;
  n.out = s;
  n.out.dim[axis] = end - begin;
  slice_attrs{axis, begin}.store(n);
  return x.g->add(n, loc);
}

constexpr tensor concat(std::initializer_list<tensor> parts, int axis, std::source_location loc = std::source_location::current()) {
  if (parts.size() == 0) return tensor{};
  const tensor first = *parts.begin();
  if (!first.valid()) return detail::invalid_of(first);
  graph& g = *first.g;
  if (parts.size() > std::size_t(max_inputs)) return g.fail_with("concat", loc, "at most ", max_inputs, " inputs; nest concats for more");
  const shape& s0 = first.shape();
  if (axis < 0) axis += s0.rank;
  if (axis < 0 || axis >= s0.rank) return g.fail_with("concat", loc, "axis ", axis, " is out of range for ", s0);
  if (s0.dim[axis] == batch) return g.fail_with("concat", loc, "cannot concatenate along the batch dim of ", s0);
  if (parts.size() == 1) return first;
  node n;
  n.kind = op::concat;
  n.type = first.type();
  concat_attrs{axis}.store(n);
  n.out = s0;
  n.out.dim[axis] = 0;
  for (const tensor& p : parts) {
    if (!p.valid()) return detail::invalid_of(p);
    const shape& s = p.shape();
    bool compatible = p.type() == first.type() && s.rank == s0.rank;
    for (int d = 0; compatible && d < s.rank; ++d) compatible = d == axis || s.dim[d] == s0.dim[d];
    if (!compatible) return g.fail_with("concat", loc, "parts ", first.type(), " ", s0, " and ", p.type(), " ", s, " differ outside axis ", axis);
    n.in[n.n_in++] = p.id;
    n.out.dim[axis] += s.dim[axis];
  }
  return g.add(n, loc);
}

constexpr tensor stack(std::initializer_list<tensor> parts, int axis, std::source_location loc = std::source_location::current()) {
  if (parts.size() == 0 || parts.size() > std::size_t(max_inputs)) return tensor{};
  tensor expanded[max_inputs]{};
  int i = 0;
  for (const tensor& p : parts) {
    if (!p.valid()) return detail::invalid_of(p);
    int ax = axis < 0 ? axis + p.rank() + 1 : axis;
    expanded[i++] = expand_dims(p, ax, loc);
  }
  int ax = axis < 0 ? axis + parts.begin()->rank() + 1 : axis;
  switch (i) {
    case 1: return expanded[0];
    case 2: return concat({expanded[0], expanded[1]}, ax, loc);
    case 3: return concat({expanded[0], expanded[1], expanded[2]}, ax, loc);
    case 4: return concat({expanded[0], expanded[1], expanded[2], expanded[3]}, ax, loc);
    case 5: return concat({expanded[0], expanded[1], expanded[2], expanded[3], expanded[4]}, ax, loc);
    case 6: return concat({expanded[0], expanded[1], expanded[2], expanded[3], expanded[4], expanded[5]}, ax, loc);
    case 7: return concat({expanded[0], expanded[1], expanded[2], expanded[3], expanded[4], expanded[5], expanded[6]}, ax, loc);
    default: return concat({expanded[0], expanded[1], expanded[2], expanded[3], expanded[4], expanded[5], expanded[6], expanded[7]}, ax, loc);
  }
}

namespace grad_detail {
constexpr tensor permute(tensor x, const int* p, int rank) {
  using detail::no_loc;
  switch (rank) {
    case 2: return transpose(x, {p[0], p[1]}, no_loc);
    case 3: return transpose(x, {p[0], p[1], p[2]}, no_loc);
    case 4: return transpose(x, {p[0], p[1], p[2], p[3]}, no_loc);
    case 5: return transpose(x, {p[0], p[1], p[2], p[3], p[4]}, no_loc);
    case 6: return transpose(x, {p[0], p[1], p[2], p[3], p[4], p[5]}, no_loc);
    default: return x;
  }
}
}  // namespace grad_detail

// ---- gradients ------------------------------------------------------------------------------------

KILN_VJP(reshape) { w.give(0, reshape(w.gy, w.x(0).shape(), detail::no_loc)); }
KILN_VJP(transpose) {
  const transpose_attrs t = transpose_attrs::of(w.n);
  int inverse[max_rank]{};
  for (int d = 0; d < t.rank; ++d) inverse[t.perm[d]] = d;
  w.give(0, grad_detail::permute(w.gy, inverse, t.rank));
}
// pad back with zeros on both sides of the axis
KILN_VJP(slice) {
  using detail::no_loc;
  const slice_attrs a = slice_attrs::of(w.n);
  const shape xs = w.x(0).shape(), out = w.n.out;
  const std::int64_t begin = a.begin, end = begin + out.dim[a.axis], extent = xs.dim[a.axis];
  shape before = out, after = out;
  before.dim[a.axis] = begin;
  after.dim[a.axis] = extent - end;
  const tensor lo = w.g.fill(before, 0, w.n.type, no_loc), hi = w.g.fill(after, 0, w.n.type, no_loc);
  if (begin == 0) w.give(0, concat({w.gy, hi}, a.axis, no_loc));
  else if (end == extent) w.give(0, concat({lo, w.gy}, a.axis, no_loc));
  else w.give(0, concat({lo, w.gy, hi}, a.axis, no_loc));
}
KILN_VJP(concat) {
  const int axis = concat_attrs::of(w.n).axis;
  std::int64_t off = 0;
  for (int k = 0; k < w.n.n_in; ++k) {
    const std::int64_t len = w.x(k).shape().dim[axis];
    if (w.needs(k)) w.give(k, slice(w.gy, axis, off, off + len, detail::no_loc));
    off += len;
  }
}

}  // namespace kiln
