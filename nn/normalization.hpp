// Batch normalization (Keras BatchNormalization, axis -1): the layer's variables, its batch
// statistics and the moving-average updates around the batch_norm op (ops/normalization.hpp).
#pragma once
#include <cstdint>
#include <source_location>
#include <string_view>
#include "../ops/elementwise.hpp"
#include "../ops/normalization.hpp"
#include "../ops/layout.hpp"
#include "../ops/reduce.hpp"
#include "../ops/state.hpp"

namespace kiln {

namespace normalization_detail {

using detail::no_loc;

// The number of elements per channel of x (every dim but the last): a scalar when static, else
// computed in the graph from the batch size.
constexpr tensor per_channel_count(tensor x) {
  graph& g = *x.g;
  const shape s = x.shape();
  std::int64_t c = 1;
  for (int d = 0; d < s.rank - 1; ++d)
    if (s.dim[d] != batch) c *= s.dim[d];
  if (!s.dynamic()) return g.scalar(double(c), x.type(), no_loc);
  const tensor n = reduce_sum(g.fill(shape{batch}, 1, x.type(), no_loc), axes{}, false, no_loc);
  return c == 1 ? n : mul(n, double(c), no_loc);
}

}  // namespace normalization_detail

// Keras BatchNormalization over the last axis of x (NHWC channels, or the features of [?,F]):
// y = (x - mean) / sqrt(var + epsilon) · gamma + beta, with variables
//   <name>/gamma (ones), <name>/beta (zeros): trainable;
//   <name>/moving_mean (zeros), <name>/moving_variance (ones): not trainable.
// training = true normalizes with the batch's statistics over every axis but the last (biased
// variance, as Keras and TF) and updates the moving ones with assigns, which always run:
//   moving = moving - (moving - batch_statistic) · (1 - momentum)
// The moving variance takes the batch variance as Keras does: for 4-D inputs Keras runs TF's
// fused kernel, which applies Bessel's correction (n / (n - 1), n = N·H·W; PyTorch does the
// same); for other ranks it uses the biased variance. training = false normalizes with the
// moving statistics. Graphs are built at compile time, so a train step and an inference graph are
// two models sharing the variable store.
constexpr tensor batch_norm(graph& g, std::string_view name, tensor x, bool training, double momentum = 0.99, double epsilon = 1e-3,
                            std::source_location loc = std::source_location::current()) {
  using detail::no_loc;
  if (!x.valid()) return x;
  const shape xs = x.shape();
  const dtype t = x.type();
  if (!is_floating(t) || xs.rank < 2 || xs.dim[xs.rank - 1] == batch)
    return g.fail_with("batch_norm", loc, "'", name, "': expects f32 or f64 x of rank >= 2 with static channels last, got ", t, " ", xs);
  constexpr std::string_view longest = "/moving_variance";
  if (name.size() + longest.size() > max_name_length)
    return g.fail_with("batch_norm", loc, "'", name, "' is too long: '", name, longest, "' must fit in ", std::int64_t(max_name_length),
                       " characters");
  if (!(momentum >= 0 && momentum <= 1) || !(epsilon > 0))
    return g.fail_with("batch_norm", loc, "'", name, "': momentum must lie in [0, 1] and epsilon be > 0");
  const std::int64_t channels = xs.dim[xs.rank - 1];
  auto var = [&](std::string_view suffix, double init_value, bool trainable) {
    name_text n(name);
    n.append(suffix);
    return g.variable(n.view(), t, shape{channels}, init::constant(init_value), trainable, loc);
  };
  const tensor gamma = var("/gamma", 1, true), beta = var("/beta", 0, true);
  const tensor moving_mean = var("/moving_mean", 0, false), moving_variance = var("/moving_variance", 1, false);
  tensor mean = moving_mean, variance = moving_variance;
  if (training) {
    axes over;
    over.all = false;
    for (int d = 0; d < xs.rank - 1; ++d) over.axis[over.count++] = d;
    mean = reduce_mean(x, over, false, loc);
    // E[(x - mean)^2] rather than E[x^2] - mean^2: no cancellation when |mean| >> std.
    variance = reduce_mean(square(sub(x, mean, no_loc), no_loc), over, false, loc);
    tensor update_variance = variance;
    if (xs.rank == 4) {
      const tensor n = normalization_detail::per_channel_count(x);
      update_variance = mul(variance, div(n, maximum(sub(n, 1.0, no_loc), 1.0, no_loc), no_loc), no_loc);
    }
    const double decay = 1 - momentum;
    assign(moving_mean, sub(moving_mean, mul(sub(moving_mean, mean, no_loc), decay, no_loc), no_loc), loc);
    assign(moving_variance, sub(moving_variance, mul(sub(moving_variance, update_variance, no_loc), decay, no_loc), no_loc), loc);
  }
  return batch_norm(x, mean, variance, beta, gamma, epsilon, loc);
}

}  // namespace kiln
