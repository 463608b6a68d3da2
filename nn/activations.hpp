// Normalizing activations over one axis, as compositions of existing ops: their gradients come
// from ops/gradients.hpp, and their elementwise parts fuse into the surrounding loops.
#pragma once
#include <source_location>
#include "../ops/elementwise.hpp"
#include "../ops/gradients.hpp"
#include "../ops/layout.hpp"
#include "../ops/reduce.hpp"
#include "../ops/softmax.hpp"

namespace kiln {

constexpr tensor logsumexp(tensor x, int axis = -1, bool keepdims = false, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  const int a = softmax_detail::checked_axis("logsumexp", x, axis, loc);
  if (a < 0) return tensor{x.g, -1};
  const auto parts = softmax_detail::log_sum_exp_parts(x, a, loc);
  const tensor lse = add(parts.log_sum, parts.shift, loc);
  if (keepdims) return lse;
  // Dropping the unit dim is a free reshape; reducing the batch dim leaves a static extent of 1.
  const shape kept = lse.shape();
  shape dropped;
  for (int d = 0; d < kept.rank; ++d)
    if (d != a) dropped.dim[dropped.rank++] = kept.dim[d];
  return reshape(lse, dropped, loc);
}

}  // namespace kiln
