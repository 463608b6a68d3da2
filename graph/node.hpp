// A graph is a flat array of these nodes; edges are input indices that always point to earlier
// nodes, so array order is already a topological order.
#pragma once
#include <bit>
#include <cstdint>
#include <string_view>
#include "dtype.hpp"
#include "shape.hpp"
#include "text.hpp"

namespace kiln {

// Every op of the library. The category functions below tell the planner how each one executes.
enum class op : std::uint8_t {
  // sources
  placeholder, variable, constant, scalar, iota, fill,
  // elementwise, unary
  neg, abs, exp, log, sqrt, square, tanh, sigmoid, relu, softplus, logical_not, cast, sign, rsqrt,
  // elementwise, binary
  add, sub, mul, div, pow, minimum, maximum,
  less, less_equal, greater, greater_equal, equal, not_equal, logical_and, logical_or,
  // elementwise, binary, integer operands: uniform random numbers from a counter-based hash
  uniform_hash,
  // elementwise, ternary
  select,
  // reductions over one contiguous run of axes: [outer, reduced, inner]
  reduce_sum, reduce_mean, reduce_max, reduce_min, argmax,
  // dense algebra
  matmul,
  // layout
  reshape, transpose, slice, concat,
  // indexing
  gather,
  // sliding windows over [batch,H,W,C] images (ops/window.hpp)
  im2col, col2im, max_pool, max_pool_grad, max_pool_select,
  // state
  assign,
  count_
};

enum class op_kind : std::uint8_t { source, elementwise, reduction, matmul, alias, layout, indexing, window, assign };

constexpr op_kind kind_of(op o) {
  if (o <= op::fill) return op_kind::source;
  if (o <= op::select) return op_kind::elementwise;
  if (o <= op::argmax) return op_kind::reduction;
  if (o == op::matmul) return op_kind::matmul;
  if (o == op::reshape) return op_kind::alias;
  if (o <= op::concat) return op_kind::layout;
  if (o <= op::gather) return op_kind::indexing;
  if (o <= op::max_pool_select) return op_kind::window;
  return op_kind::assign;
}

constexpr std::string_view name_of(op o) {
  constexpr std::string_view names[] = {
      "placeholder", "variable", "constant", "scalar", "iota", "fill",
      "neg", "abs", "exp", "log", "sqrt", "square", "tanh", "sigmoid", "relu", "softplus",
      "logical_not", "cast", "sign", "rsqrt",
      "add", "sub", "mul", "div", "pow", "minimum", "maximum",
      "less", "less_equal", "greater", "greater_equal", "equal", "not_equal", "logical_and", "logical_or",
      "uniform_hash",
      "select",
      "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "argmax",
      "matmul",
      "reshape", "transpose", "slice", "concat",
      "gather",
      "im2col", "col2im", "max_pool", "max_pool_grad", "max_pool_select",
      "assign"};
  static_assert(sizeof(names) / sizeof(names[0]) == std::size_t(op::count_), "every op needs a name");
  return names[std::size_t(o)];
}

// Relative cost of one element of an elementwise op; drives the parallel grain size.
constexpr int cost_of(op o) {
  switch (o) {
    case op::exp: case op::log: case op::tanh: case op::sigmoid: case op::softplus: case op::pow: return 12;
    case op::div: case op::sqrt: case op::rsqrt: return 4;
    case op::uniform_hash: return 8;
    default: return 1;
  }
}

// Leaves are nodes a fused loop reads without computing: materialized buffers or values it can
// produce from the index alone.
constexpr bool is_immediate(op o) { return o == op::scalar || o == op::iota || o == op::fill; }

enum class init_kind : std::uint8_t { none, zeros, constant, uniform, normal, truncated_normal, he_normal, glorot_uniform, arange, values };

inline constexpr int max_inputs = 8;

struct node {
  op kind = op::scalar;
  dtype type = dtype::f32;
  shape out{};
  int n_in = 0;
  int in[max_inputs]{-1, -1, -1, -1, -1, -1, -1, -1};
  std::int64_t a[max_rank]{};  // op-specific: permutation, slice start, reduced axis range, pool offset
  std::int64_t k = 0;          // op-specific: axis, depth, flags, pool offset
  double value = 0, value2 = 0;  // scalar immediates, initializer parameters
  init_kind init = init_kind::none;
  std::uint64_t seed = 0;
  name_text name{};
  // Where the user declared the node; used in messages, never in comparisons.
  int line = 0;
  const char* file = "";

  // Hash of everything same_computation compares; lets the builder find duplicates in O(1).
  constexpr std::uint64_t hash() const {
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 0x100000001b3ull; h ^= h >> 29; };
    mix(std::uint64_t(kind) | std::uint64_t(type) << 8 | std::uint64_t(init) << 16 | std::uint64_t(n_in) << 24);
    mix(std::uint64_t(out.rank));
    for (int i = 0; i < out.rank; ++i) mix(std::uint64_t(out.dim[i]));
    for (int i = 0; i < n_in; ++i) mix(std::uint64_t(in[i]));
    for (int i = 0; i < max_rank; ++i) if (a[i]) mix(std::uint64_t(a[i]) + std::uint64_t(i));
    mix(std::uint64_t(k));
    mix(std::bit_cast<std::uint64_t>(value));
    mix(std::bit_cast<std::uint64_t>(value2));
    mix(seed);
    for (std::size_t i = 0; i < name.size; ++i) mix(std::uint64_t(std::uint8_t(name.text[i])));
    return h;
  }

  constexpr bool same_computation(const node& o) const {
    if (kind != o.kind || type != o.type || !(out == o.out) || n_in != o.n_in || k != o.k ||
        value != o.value || value2 != o.value2 || init != o.init || seed != o.seed || !(name == o.name))
      return false;
    for (int i = 0; i < max_inputs; ++i)
      if (in[i] != o.in[i]) return false;
    for (int i = 0; i < max_rank; ++i)
      if (a[i] != o.a[i]) return false;
    return true;
  }
};

}  // namespace kiln
