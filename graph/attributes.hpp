// Typed attributes, one struct per op family: the only code that knows where a family keeps its
// attributes in a node's generic storage. Builders write them with store(), gradient rules,
// the planner, kernels and describe() read them with of(). A family that needs an attribute
// adds a field here, and every reader sees it by name.
#pragma once
#include <bit>
#include <cstdint>
#include "node.hpp"

namespace kiln {

// scalar, fill: the value every element has.
struct immediate_attrs {
  double value = 0;
  static constexpr immediate_attrs of(const node& n) { return {n.attr_real[0]}; }
  constexpr void store(node& n) const { n.attr_real[0] = value; }
  friend constexpr bool operator==(const immediate_attrs&, const immediate_attrs&) = default;
};

// iota: start, start + step, ... in row-major order.
struct iota_attrs {
  double start = 0, step = 1;
  static constexpr iota_attrs of(const node& n) { return {n.attr_real[0], n.attr_real[1]}; }
  constexpr void store(node& n) const {
    n.attr_real[0] = start;
    n.attr_real[1] = step;
  }
  friend constexpr bool operator==(const iota_attrs&, const iota_attrs&) = default;
};

// constant: where its values start in the graph's pool.
struct constant_attrs {
  std::int64_t pool_offset = 0;
  static constexpr constant_attrs of(const node& n) { return {n.attr_int[0]}; }
  constexpr void store(node& n) const { n.attr_int[0] = pool_offset; }
  friend constexpr bool operator==(const constant_attrs&, const constant_attrs&) = default;
};

// variable: how its initial value is drawn (its flags say what it is for).
struct variable_attrs {
  init_kind init = init_kind::zeros;
  double p0 = 0, p1 = 0;         // constant value; uniform bounds; normal mean and stddev; arange start and step
  std::uint64_t seed = 0;        // 0: the graph's seed
  std::int64_t pool_offset = 0;  // init_kind::values: where the values start in the pool
  static constexpr variable_attrs of(const node& n) {
    return {init_kind(n.attr_int[0]), n.attr_real[0], n.attr_real[1], std::bit_cast<std::uint64_t>(n.attr_int[1]), n.attr_int[2]};
  }
  constexpr void store(node& n) const {
    n.attr_int[0] = std::int64_t(init);
    n.attr_int[1] = std::bit_cast<std::int64_t>(seed);
    n.attr_int[2] = pool_offset;
    n.attr_real[0] = p0;
    n.attr_real[1] = p1;
  }
  friend constexpr bool operator==(const variable_attrs&, const variable_attrs&) = default;
};

// reduce_*, argmax: the reduced run of axes [first, last] of the input.
struct reduce_attrs {
  int first = 0, last = 0;
  bool keepdims = false;
  static constexpr reduce_attrs of(const node& n) { return {int(n.attr_int[0]), int(n.attr_int[1]), n.attr_int[2] != 0}; }
  constexpr void store(node& n) const {
    n.attr_int[0] = first;
    n.attr_int[1] = last;
    n.attr_int[2] = keepdims;
  }
  friend constexpr bool operator==(const reduce_attrs&, const reduce_attrs&) = default;
};

// matmul: C = op(A) op(B). fold_rows (gradients only) reads [?,R,X] operands as [?·R, X]: the
// weight gradient of shared weights as one contraction over every row of the batch.
struct matmul_attrs {
  bool transpose_a = false, transpose_b = false, fold_rows = false;
  static constexpr matmul_attrs of(const node& n) { return {n.attr_int[0] != 0, n.attr_int[1] != 0, n.attr_int[2] != 0}; }
  constexpr void store(node& n) const {
    n.attr_int[0] = transpose_a;
    n.attr_int[1] = transpose_b;
    n.attr_int[2] = fold_rows;
  }
  friend constexpr bool operator==(const matmul_attrs&, const matmul_attrs&) = default;
};

// transpose: output dim d is input dim perm[d].
struct transpose_attrs {
  int rank = 0;
  int perm[max_rank]{};
  static constexpr transpose_attrs of(const node& n) {
    transpose_attrs t;
    t.rank = n.out.rank;
    for (int d = 0; d < t.rank; ++d) t.perm[d] = int(n.attr_int[d]);
    return t;
  }
  constexpr void store(node& n) const {
    for (int d = 0; d < rank; ++d) n.attr_int[d] = perm[d];
  }
};

// slice: x[begin : begin + out.dim[axis]] along axis.
struct slice_attrs {
  int axis = 0;
  std::int64_t begin = 0;
  static constexpr slice_attrs of(const node& n) { return {int(n.attr_int[0]), n.attr_int[1]}; }
  constexpr void store(node& n) const {
    n.attr_int[0] = axis;
    n.attr_int[1] = begin;
  }
  friend constexpr bool operator==(const slice_attrs&, const slice_attrs&) = default;
};

// concat: the axis its inputs are joined along.
struct concat_attrs {
  int axis = 0;
  static constexpr concat_attrs of(const node& n) { return {int(n.attr_int[0])}; }
  constexpr void store(node& n) const { n.attr_int[0] = axis; }
  friend constexpr bool operator==(const concat_attrs&, const concat_attrs&) = default;
};

// gather: params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis+1:].
struct gather_attrs {
  int axis = 0, batch_dims = 0;
  static constexpr gather_attrs of(const node& n) { return {int(n.attr_int[0]), int(n.attr_int[1])}; }
  constexpr void store(node& n) const {
    n.attr_int[0] = axis;
    n.attr_int[1] = batch_dims;
  }
  friend constexpr bool operator==(const gather_attrs&, const gather_attrs&) = default;
};

// softmax, log_softmax: the axis they normalize along.
struct axis_attrs {
  int axis = 0;
  static constexpr axis_attrs of(const node& n) { return {int(n.attr_int[0])}; }
  constexpr void store(node& n) const { n.attr_int[0] = axis; }
  friend constexpr bool operator==(const axis_attrs&, const axis_attrs&) = default;
};

// batch_norm: the epsilon added to the variance.
struct normalization_attrs {
  double epsilon = 1e-3;
  static constexpr normalization_attrs of(const node& n) { return {n.attr_real[0]}; }
  constexpr void store(node& n) const { n.attr_real[0] = epsilon; }
  friend constexpr bool operator==(const normalization_attrs&, const normalization_attrs&) = default;
};

// fully_connected: the activation its epilogue applies after the bias.
enum class epilogue_activation : std::uint8_t { linear, relu, sigmoid, tanh, softplus };
constexpr std::string_view name_of(epilogue_activation a) {
  switch (a) {
    case epilogue_activation::linear: return "linear";
    case epilogue_activation::relu: return "relu";
    case epilogue_activation::sigmoid: return "sigmoid";
    case epilogue_activation::tanh: return "tanh";
    case epilogue_activation::softplus: return "softplus";
  }
  return "?";
}
struct fully_connected_attrs {
  epilogue_activation activation = epilogue_activation::linear;
  static constexpr fully_connected_attrs of(const node& n) { return {epilogue_activation(n.attr_int[0])}; }
  constexpr void store(node& n) const { n.attr_int[0] = std::int64_t(activation); }
  friend constexpr bool operator==(const fully_connected_attrs&, const fully_connected_attrs&) = default;
};

// custom_gradient: which of the graph's custom rules holds its VJP.
struct custom_gradient_attrs {
  int rule = 0;
  static constexpr custom_gradient_attrs of(const node& n) { return {int(n.attr_int[0])}; }
  constexpr void store(node& n) const { n.attr_int[0] = rule; }
  friend constexpr bool operator==(const custom_gradient_attrs&, const custom_gradient_attrs&) = default;
};

// The window ops (ops/window.hpp), convolutions and pools: a kh×kw window moved by `stride` over
// an [?,H,W,C] image padded by `top` rows and `left` columns (and `bottom`, `right`: what 'same'
// padding adds after the image; windows never reach further), with ho×wo positions.
struct window_geometry {
  std::int64_t kh = 1, kw = 1, stride = 1, top = 0, left = 0, bottom = 0, right = 0, ho = 0, wo = 0;
  // max_pool_grad / max_pool_select only: route only through maxima > 0. relu(h) feeding a max
  // pool has relu'(h) = 0 exactly where the maximum it routes to is 0, so the rewrite of
  // graph/lower.hpp folds the relu's mask into the routing instead of a separate pass.
  bool positive_only = false;
  static constexpr window_geometry of(const node& n) {
    return {n.attr_int[0], n.attr_int[1], n.attr_int[2], n.attr_int[3], n.attr_int[4],
            n.attr_int[5], n.attr_int[6], n.attr_int[7], n.attr_int[8], n.attr_int[9] != 0};
  }
  constexpr void store(node& n) const {
    n.attr_int[0] = kh;
    n.attr_int[1] = kw;
    n.attr_int[2] = stride;
    n.attr_int[3] = top;
    n.attr_int[4] = left;
    n.attr_int[5] = bottom;
    n.attr_int[6] = right;
    n.attr_int[7] = ho;
    n.attr_int[8] = wo;
    n.attr_int[9] = positive_only;
  }
  friend constexpr bool operator==(const window_geometry&, const window_geometry&) = default;
};

}  // namespace kiln
