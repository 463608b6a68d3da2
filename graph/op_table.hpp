// The op table: the one list of every op of the library and what it is. The `op` enum, names,
// families (how the planner executes an op), arity, cost, dtype rules, gradient kind and whether
// an op is a primitive or a composite lowered after differentiation are all generated from the
// rows below. Nothing depends on the order of the rows: an op appended anywhere gets exactly the
// traits written in its own row (tests/test_op_table.cpp proves it for every row).
//
// Columns of KILN_OP(name, family, arity, cost, dtypes, gradient, lowering):
//   family    op_family: source, elementwise, reduction, matmul, alias, layout, indexing, window,
//             state, composite. The planner schedules each family its own way; a composite never
//             reaches it (graph/lower.hpp replaces it by primitives first).
//   arity     number of inputs; `variadic` for 1 .. max_inputs (concat).
//   cost      relative cost of one element (elementwise ops): drives the parallel grain size.
//   dtypes    dtype_rule: what the builder accepts and returns (see dtype_rule below).
//   gradient  grad_kind: rule (a VJP next to the op's builder, gradient_rule<op::x>), zero
//             (piecewise constant: contributes nothing), decompose (differentiate the op's
//             lowering), none (not differentiable: a gradient that reaches it is a graph error).
//   lowering  primitive (kernels implement it) or composite (graph/lower.hpp rewrites it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kiln {

enum class op_family : std::uint8_t { source, elementwise, reduction, matmul, alias, layout, indexing, window, state, composite };

// What an op accepts and returns, checked by its builder (ops/*.hpp) from this table.
enum class dtype_rule : std::uint8_t {
  declared,   // sources: the dtype is an argument of the builder
  numeric,    // operands share a numeric dtype (not bool); the result has it too
  floating,   // operands share f32 or f64; the result has it too
  logical,    // bool operands, bool result
  compare,    // operands share a numeric dtype; the result is bool
  any,        // any dtype (layout ops, select's branches, cast's target is the node's dtype)
  to_index,   // numeric operand, i32 result (argmax)
  hash,       // integer operands, floating result (uniform_hash)
};

enum class grad_kind : std::uint8_t { rule, zero, decompose, none };
enum class lowering : std::uint8_t { primitive, composite };

inline constexpr int variadic = -1;

// clang-format off
#define KILN_OP_TABLE(KILN_OP)                                                               \
  /* sources */                                                                              \
  KILN_OP(placeholder,     source,      0, 1,  declared, none,      primitive)               \
  KILN_OP(variable,        source,      0, 1,  declared, none,      primitive)               \
  KILN_OP(constant,        source,      0, 1,  declared, none,      primitive)               \
  KILN_OP(scalar,          source,      0, 1,  declared, none,      primitive)               \
  KILN_OP(iota,            source,      0, 1,  declared, none,      primitive)               \
  KILN_OP(fill,            source,      0, 1,  declared, none,      primitive)               \
  /* elementwise, unary */                                                                   \
  KILN_OP(neg,             elementwise, 1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(abs,             elementwise, 1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(exp,             elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(log,             elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(sqrt,            elementwise, 1, 4,  floating, rule,      primitive)               \
  KILN_OP(rsqrt,           elementwise, 1, 4,  floating, rule,      primitive)               \
  KILN_OP(square,          elementwise, 1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(tanh,            elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(sigmoid,         elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(relu,            elementwise, 1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(softplus,        elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(log1p,           elementwise, 1, 12, floating, rule,      primitive)               \
  KILN_OP(sign,            elementwise, 1, 1,  numeric,  zero,      primitive)               \
  KILN_OP(logical_not,     elementwise, 1, 1,  logical,  zero,      primitive)               \
  KILN_OP(cast,            elementwise, 1, 1,  any,      rule,      primitive)               \
  /* elementwise, binary */                                                                  \
  KILN_OP(add,             elementwise, 2, 1,  numeric,  rule,      primitive)               \
  KILN_OP(sub,             elementwise, 2, 1,  numeric,  rule,      primitive)               \
  KILN_OP(mul,             elementwise, 2, 1,  numeric,  rule,      primitive)               \
  KILN_OP(div,             elementwise, 2, 4,  numeric,  rule,      primitive)               \
  KILN_OP(pow,             elementwise, 2, 12, numeric,  rule,      primitive)               \
  KILN_OP(minimum,         elementwise, 2, 1,  numeric,  rule,      primitive)               \
  KILN_OP(maximum,         elementwise, 2, 1,  numeric,  rule,      primitive)               \
  KILN_OP(less,            elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(less_equal,      elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(greater,         elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(greater_equal,   elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(equal,           elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(not_equal,       elementwise, 2, 1,  compare,  zero,      primitive)               \
  KILN_OP(logical_and,     elementwise, 2, 1,  logical,  zero,      primitive)               \
  KILN_OP(logical_or,      elementwise, 2, 1,  logical,  zero,      primitive)               \
  KILN_OP(uniform_hash,    elementwise, 2, 8,  hash,     zero,      primitive)               \
  /* elementwise, ternary: where(cond, a, b) */                                              \
  KILN_OP(select,          elementwise, 3, 1,  any,      rule,      primitive)               \
  /* reductions over one contiguous run of axes: [outer, reduced, inner] */                  \
  KILN_OP(reduce_sum,      reduction,   1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(reduce_mean,     reduction,   1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(reduce_max,      reduction,   1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(reduce_min,      reduction,   1, 1,  numeric,  rule,      primitive)               \
  KILN_OP(argmax,          reduction,   1, 1,  to_index, zero,      primitive)               \
  /* dense algebra */                                                                        \
  KILN_OP(matmul,          matmul,      2, 1,  floating, rule,      primitive)               \
  /* free views of the input's buffer */                                                     \
  KILN_OP(reshape,         alias,       1, 1,  any,      rule,      primitive)               \
  KILN_OP(stop_gradient,   alias,       1, 1,  any,      zero,      primitive)               \
  KILN_OP(custom_gradient, alias,       1, 1,  floating, rule,      primitive)               \
  /* copies */                                                                               \
  KILN_OP(transpose,       layout,      1, 1,  any,      rule,      primitive)               \
  KILN_OP(slice,           layout,      1, 1,  any,      rule,      primitive)               \
  KILN_OP(concat,          layout,      variadic, 1, any, rule,     primitive)               \
  /* indexing */                                                                             \
  KILN_OP(gather,          indexing,    2, 1,  any,      rule,      primitive)               \
  /* sliding windows over [batch,H,W,C] images (ops/window.hpp) */                           \
  KILN_OP(im2col,          window,      1, 1,  floating, rule,      primitive)               \
  KILN_OP(col2im,          window,      1, 1,  floating, rule,      primitive)               \
  KILN_OP(max_pool,        window,      1, 1,  floating, rule,      primitive)               \
  KILN_OP(max_pool_grad,   window,      2, 1,  floating, rule,      primitive)               \
  KILN_OP(max_pool_select, window,      2, 1,  floating, rule,      primitive)               \
  /* state */                                                                                \
  KILN_OP(assign,          state,       2, 1,  any,      none,      primitive)                   \
  /* composites: the ops the user wrote, kept until lowering (ops/lowering.hpp) */            \
  KILN_OP(conv2d,                 composite, 2, 1, floating, rule,      composite)            \
  KILN_OP(conv2d_backprop_input,  composite, 2, 1, floating, decompose, composite)            \
  KILN_OP(conv2d_backprop_filter, composite, 2, 1, floating, decompose, composite)            \
  KILN_OP(avg_pool2d,             composite, 1, 1, floating, decompose, composite)            \
  KILN_OP(batch_norm,             composite, 5, 1, floating, decompose, composite)            \
  KILN_OP(softmax,                composite, 1, 1, floating, decompose, composite)            \
  KILN_OP(log_softmax,            composite, 1, 1, floating, decompose, composite)            \
  KILN_OP(fully_connected,        composite, 3, 1, floating, decompose, composite)
// clang-format on

// The op enum: one value per row, in row order (which nothing relies on).
enum class op : std::uint8_t {
#define KILN_OP_ENUM(name, ...) name,
  KILN_OP_TABLE(KILN_OP_ENUM)
#undef KILN_OP_ENUM
      count_
};

inline constexpr std::size_t op_count = std::size_t(op::count_);

struct op_info {
  op id;
  std::string_view name;
  op_family family;
  int arity;
  int cost;
  dtype_rule dtypes;
  grad_kind gradient;
  lowering lower;
};

// Every row's traits, indexed by the op's enum value. Each entry carries its own op id, and the
// static_assert below checks entry i describes op i, so a row can never describe another op.
inline constexpr op_info op_infos[] = {
#define KILN_OP_INFO(name, family, arity, cost, dtypes, gradient, lower) \
  op_info{op::name, #name, op_family::family, arity, cost, dtype_rule::dtypes, grad_kind::gradient, lowering::lower},
    KILN_OP_TABLE(KILN_OP_INFO)
#undef KILN_OP_INFO
};

constexpr bool op_infos_are_indexed_by_op() {
  if (sizeof(op_infos) / sizeof(op_infos[0]) != op_count) return false;
  for (std::size_t i = 0; i < op_count; ++i)
    if (std::size_t(op_infos[i].id) != i) return false;
  return true;
}
static_assert(op_infos_are_indexed_by_op(), "kiln: the op table and the op enum disagree");

constexpr const op_info& info_of(op o) { return op_infos[std::size_t(o)]; }
constexpr std::string_view name_of(op o) { return o < op::count_ ? info_of(o).name : "?"; }
constexpr op_family family_of(op o) { return info_of(o).family; }
constexpr int arity_of(op o) { return info_of(o).arity; }
// Relative cost of one element of an elementwise op; drives the parallel grain size.
constexpr int cost_of(op o) { return info_of(o).cost; }
constexpr dtype_rule dtype_rule_of(op o) { return info_of(o).dtypes; }
constexpr grad_kind gradient_kind_of(op o) { return info_of(o).gradient; }
constexpr bool is_composite(op o) { return info_of(o).lower == lowering::composite; }

constexpr std::string_view name_of(op_family f) {
  switch (f) {
    case op_family::source: return "source";
    case op_family::elementwise: return "elementwise";
    case op_family::reduction: return "reduction";
    case op_family::matmul: return "matmul";
    case op_family::alias: return "alias";
    case op_family::layout: return "layout";
    case op_family::indexing: return "indexing";
    case op_family::window: return "window";
    case op_family::state: return "state";
    case op_family::composite: return "composite";
  }
  return "?";
}

// Dtype predicates the builders ask, derived from the dtype column.
constexpr bool needs_float(op o) { return dtype_rule_of(o) == dtype_rule::floating; }
constexpr bool is_comparison(op o) { return dtype_rule_of(o) == dtype_rule::compare; }
constexpr bool is_logical(op o) { return dtype_rule_of(o) == dtype_rule::logical; }

// Leaves are nodes a fused loop reads without computing: materialized buffers or values it can
// produce from the index alone.
constexpr bool is_immediate(op o) { return o == op::scalar || o == op::iota || o == op::fill; }

}  // namespace kiln
