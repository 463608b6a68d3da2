// softmax and log_softmax along one axis, as ops the graph keeps until lowering (ONNX's Softmax
// and LogSoftmax). Lowered as a composition: x - max(x) and log(sum(exp(x - max(x)))) along the
// axis. The max shift keeps exp() from overflowing and the sum >= 1 keeps log() finite for any
// finite x. The shift is a stop_gradient: the results do not depend on it mathematically, so their
// gradients are exactly softmax(x) (and I - softmax) with no terms that cancel. log_softmax is
// `shifted - log_sum` rather than x - logsumexp(x): rounding then scales with the log-probability,
// not with |x| (logits of 1000 in f32 would otherwise lose 3e-5 relative in softmax). softmax is
// exp(log_softmax(x)): the exp inside the sum has one consumer and fuses into the reduction, and
// the nodes are shared (CSE) with log_softmax and logsumexp of the same x. Their gradients are
// their lowering's.
#pragma once
#include <source_location>
#include "elementwise.hpp"
#include "reduce.hpp"
#include "rules.hpp"

namespace kiln {

namespace softmax_detail {

// The axis as a non-negative index, or -1 (after recording an error) when x cannot be normalized
// along it.
constexpr int checked_axis(std::string_view op_name, tensor x, int axis, const std::source_location& loc) {
  graph& g = *x.g;
  const shape s = x.shape();
  if (!is_floating(x.type())) {
    g.fail_with(op_name, loc, "expects f32 or f64, got ", x.type(), " ", s);
    return -1;
  }
  if (s.rank == 0) {
    g.fail_with(op_name, loc, "expects a tensor of rank >= 1, got a scalar");
    return -1;
  }
  const int a = axis < 0 ? axis + s.rank : axis;
  if (a < 0 || a >= s.rank) {
    g.fail_with(op_name, loc, "axis ", axis, " is out of range for shape ", s);
    return -1;
  }
  return a;
}

struct shifted_log_sum {
  tensor shift, shifted, log_sum;
};
constexpr shifted_log_sum log_sum_exp_parts(tensor x, int a, const std::source_location& loc) {
  const tensor shift = stop_gradient(reduce_max(x, axes{a}, true, loc), loc);
  const tensor shifted = sub(x, shift, loc);
  return {shift, shifted, log(reduce_sum(exp(shifted, loc), axes{a}, true, loc), loc)};
}

constexpr tensor normalize(op kind, tensor x, int axis, const std::source_location& loc) {
  if (!x.valid()) return detail::invalid_of(x);
  const int a = checked_axis(name_of(kind), x, axis, loc);
  if (a < 0) return tensor{x.g, -1};
  node n;
  n.kind = kind;
  n.type = x.type();
  n.out = x.shape();
  n.n_in = 1;
  n.in[0] = x.id;
  axis_attrs{a}.store(n);
  return x.g->add(n, loc);
}

}  // namespace softmax_detail

// x - logsumexp(x), computed as (x - max) - log(sum(exp(x - max))): never log(0), even where
// softmax(x) underflows to 0.
constexpr tensor log_softmax(tensor x, int axis = -1, std::source_location loc = std::source_location::current()) {
  return softmax_detail::normalize(op::log_softmax, x, axis, loc);
}

constexpr tensor softmax(tensor x, int axis = -1, std::source_location loc = std::source_location::current()) {
  return softmax_detail::normalize(op::softmax, x, axis, loc);
}

KILN_LOWER(log_softmax) {
  const auto parts = softmax_detail::log_sum_exp_parts(tensor{&g, n.in[0]}, axis_attrs::of(n).axis, detail::no_loc);
  return sub(parts.shifted, parts.log_sum, detail::no_loc);
}

KILN_LOWER(softmax) {
  const auto parts = softmax_detail::log_sum_exp_parts(tensor{&g, n.in[0]}, axis_attrs::of(n).axis, detail::no_loc);
  return exp(sub(parts.shifted, parts.log_sum, detail::no_loc), detail::no_loc);
}

}  // namespace kiln
