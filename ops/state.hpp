// Variable updates inside a graph. Within one run every read of a variable sees the value from
// before the run; the planner orders each assign after all readers of its variable.
#pragma once
#include "elementwise.hpp"

namespace kiln {

constexpr tensor assign(tensor var, tensor value, std::source_location loc = std::source_location::current()) {
  if (!var.valid()) return detail::invalid_of(var);
  if (!value.valid()) return detail::invalid_of(value);
  graph& g = *var.g;
  const node& v = var.info();
  if (v.kind != op::variable)
    return g.fail_with("assign", loc, "the target must be a variable, got ", name_of(v.kind), " ", v.type, " ", v.out,
                       " (value ", value.type(), " ", value.shape(), ")");
  shape out;
  if (value.type() != v.type || !broadcast_shapes(value.shape(), v.out, out) || !(out == v.out))
    return g.fail_with("assign", loc, "variable '", v.name.view(), "' is ", v.type, " ", v.out, ", value is ", value.type(), " ", value.shape());
  node n;
  n.kind = op::assign;
  n.type = v.type;
  n.out = v.out;
  n.n_in = 2;
  n.in[0] = var.id;
  n.in[1] = value.id;
  return g.add(n, loc);
}
constexpr tensor assign(tensor var, double value, std::source_location loc = std::source_location::current()) {
  return assign(var, detail::scalar_like(var, value), loc);
}
constexpr tensor assign_add(tensor var, tensor delta, std::source_location loc = std::source_location::current()) {
  return assign(var, add(var, delta, loc), loc);
}
constexpr tensor assign_sub(tensor var, tensor delta, std::source_location loc = std::source_location::current()) {
  return assign(var, sub(var, delta, loc), loc);
}

}  // namespace kiln
