// A graph is a flat array of these nodes; edges are input indices that always point to earlier
// nodes, so array order is already a topological order. What an op is comes from the op table
// (graph/op_table.hpp); what a node's attributes mean comes from its family's accessor in
// graph/attributes.hpp, never from the generic storage directly.
#pragma once
#include <bit>
#include <cstdint>
#include <string_view>
#include "dtype.hpp"
#include "op_table.hpp"
#include "shape.hpp"
#include "text.hpp"

namespace kiln {

enum class init_kind : std::uint8_t { none, zeros, constant, uniform, normal, truncated_normal, he_normal, glorot_uniform, arange, values };

// Named flags of a node (variables): what a variable is for, instead of sentinel values.
enum node_flag : std::uint32_t {
  flag_trainable = 1u << 0,     // minimize() updates it (unless told otherwise)
  flag_metric_state = 1u << 1,  // a metric's running total or count, zeroed by metrics::reset_all
};

inline constexpr int max_inputs = 8;
inline constexpr int max_int_attributes = 10;
inline constexpr int max_real_attributes = 2;

struct node {
  op kind = op::scalar;
  dtype type = dtype::f32;
  shape out{};
  int n_in = 0;
  int in[max_inputs]{-1, -1, -1, -1, -1, -1, -1, -1};
  // Generic attribute storage. Read and written only through the family accessors of
  // graph/attributes.hpp (matmul_attrs, reduce_attrs, window_geometry, ...).
  std::int64_t attr_int[max_int_attributes]{};
  double attr_real[max_real_attributes]{};
  std::uint32_t flags = 0;
  name_text name{};
  // Where the user declared the node; used in messages, never in comparisons.
  int line = 0;
  const char* file = "";

  constexpr bool has(node_flag f) const { return (flags & f) != 0; }

  // Hash of everything same_computation compares; lets the builder find duplicates in O(1).
  constexpr std::uint64_t hash() const {
    std::uint64_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 0x100000001b3ull; h ^= h >> 29; };
    mix(std::uint64_t(kind) | std::uint64_t(type) << 8 | std::uint64_t(n_in) << 24 | std::uint64_t(flags) << 32);
    mix(std::uint64_t(out.rank));
    for (int i = 0; i < out.rank; ++i) mix(std::uint64_t(out.dim[i]));
    for (int i = 0; i < n_in; ++i) mix(std::uint64_t(in[i]));
    for (int i = 0; i < max_int_attributes; ++i)
      if (attr_int[i]) mix(std::uint64_t(attr_int[i]) + std::uint64_t(i));
    for (int i = 0; i < max_real_attributes; ++i) mix(std::bit_cast<std::uint64_t>(attr_real[i]));
    for (std::size_t i = 0; i < name.size; ++i) mix(std::uint64_t(std::uint8_t(name.text[i])));
    return h;
  }

  constexpr bool same_computation(const node& o) const {
    if (kind != o.kind || type != o.type || !(out == o.out) || n_in != o.n_in || flags != o.flags || !(name == o.name)) return false;
    for (int i = 0; i < max_inputs; ++i)
      if (in[i] != o.in[i]) return false;
    for (int i = 0; i < max_int_attributes; ++i)
      if (attr_int[i] != o.attr_int[i]) return false;
    for (int i = 0; i < max_real_attributes; ++i)
      if (std::bit_cast<std::uint64_t>(attr_real[i]) != std::bit_cast<std::uint64_t>(o.attr_real[i])) return false;
    return true;
  }
};

}  // namespace kiln
