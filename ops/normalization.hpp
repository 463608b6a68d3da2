// Batch normalization with given statistics, as an op the graph keeps until lowering (ONNX's
// BatchNormalization):
//   batch_norm(x, mean, variance, offset, scale, epsilon) = (x - mean) / sqrt(variance + epsilon)
//                                                           · scale + offset
// over the last axis of x (NHWC channels, or the features of [?,F]); mean, variance, offset and
// scale are [C]. nn/normalization.hpp's layer computes the batch statistics (or reads the moving
// ones) and updates the moving averages around it. Lowered as x·s + t with per-channel
// s = scale / sqrt(variance + epsilon) and t = offset - mean·s: the output is one elementwise
// pass, and x - mean (inside the variance) fuses into its reduction. Its gradient is its
// lowering's.
#pragma once
#include <source_location>
#include "elementwise.hpp"
#include "rules.hpp"

namespace kiln {

constexpr tensor batch_norm(tensor x, tensor mean, tensor variance, tensor offset, tensor scale, double epsilon = 1e-3,
                            std::source_location loc = std::source_location::current()) {
  for (const tensor& t : {x, mean, variance, offset, scale})
    if (!t.valid()) return detail::invalid_of(t);
  graph& g = *x.g;
  const shape xs = x.shape();
  if (!is_floating(x.type()) || xs.rank < 1 || xs.dim[xs.rank - 1] == batch)
    return g.fail_with("batch_norm", loc, "expects f32 or f64 x with static channels last, got ", x.type(), " ", xs);
  const shape channels{xs.dim[xs.rank - 1]};
  for (const tensor& t : {mean, variance, offset, scale})
    if (t.type() != x.type() || !(t.shape() == channels))
      return g.fail_with("batch_norm", loc, "mean, variance, offset and scale must be ", x.type(), " ", channels, " for x ", xs, ", got ",
                         t.type(), " ", t.shape());
  if (!(epsilon > 0)) return g.fail_with("batch_norm", loc, "epsilon must be > 0");
  node n;
  n.kind = op::batch_norm;
  n.type = x.type();
  n.out = xs;
  n.n_in = 5;
  n.in[0] = x.id;
  n.in[1] = mean.id;
  n.in[2] = variance.id;
  n.in[3] = offset.id;
  n.in[4] = scale.id;
  normalization_attrs{epsilon}.store(n);
  return g.add(n, loc);
}

KILN_LOWER(batch_norm) {
  using detail::no_loc;
  const tensor x{&g, n.in[0]}, mean{&g, n.in[1]}, variance{&g, n.in[2]}, offset{&g, n.in[3]}, scale{&g, n.in[4]};
  const tensor s = mul(scale, rsqrt(add(variance, normalization_attrs::of(n).epsilon, no_loc), no_loc), no_loc);
  const tensor t = sub(offset, mul(mean, s, no_loc), no_loc);
  return add(mul(x, s, no_loc), t, no_loc);
}

}  // namespace kiln
