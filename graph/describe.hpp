// Human-readable views of what the compiler did: the plan as text and the graph as GraphViz dot
// with one cluster per fusion group.
#pragma once
#include <cstdio>
#include <string>
#include "../runtime/view.hpp"
#include "program.hpp"

namespace kiln {

namespace detail {
template <class P> std::string node_label(int i) {
  const node& n = P::nodes[std::size_t(i)];
  std::string s = "%" + std::to_string(i) + " " + std::string(name_of(n.kind));
  if (!n.name.empty()) s += " '" + std::string(n.name.view()) + "'";
  if (n.kind == op::scalar || n.kind == op::fill) {
    char v[32];
    std::snprintf(v, sizeof v, " %g", n.value);
    s += v;
  }
  s += " " + std::string(name_of(n.type)) + to_string(n.out);
  return s;
}
}  // namespace detail

// The plan: groups in execution order with their nodes, buffers and bytes.
template <class P> std::string describe() {
  const auto& p = P::plan;
  std::string s;
  int live = 0;
  for (std::size_t i = 0; i < P::N; ++i) live += p.live[i];
  s += "plan: " + std::to_string(live) + " live nodes of " + std::to_string(P::N) + ", " + std::to_string(p.n_groups) +
       " groups (" + std::to_string(p.count_groups(group_kind::elementwise)) + " fused loops), " + std::to_string(p.n_slots) +
       " arena buffers\n";
  for (int pos = 0; pos < p.n_groups; ++pos) {
    const int g = p.schedule[std::size_t(pos)];
    const group_info& gi = p.groups[std::size_t(g)];
    s += "  [" + std::to_string(pos) + "] " + std::string(name_of(gi.kind));
    if (gi.anchor >= 0) s += " with matmul %" + std::to_string(gi.anchor) + " as prologue";
    s += " -> %" + std::to_string(gi.root);
    const int root_storage = p.storage_root(gi.root);
    if (p.storage[std::size_t(root_storage)] == storage_kind::arena) s += " in buffer " + std::to_string(p.storage_ref[std::size_t(root_storage)]);
    else if (p.storage[std::size_t(root_storage)] == storage_kind::variable) s += " into variable '" + std::string(P::nodes[std::size_t(root_storage)].name.view()) + "'";
    s += "\n";
    if (gi.anchor >= 0) s += "      " + detail::node_label<P>(gi.anchor) + "\n";
    for (std::size_t i = 0; i < P::N; ++i)
      if (p.group_of[i] == g) s += "      " + detail::node_label<P>(int(i)) + "\n";
    // immediates the loop reads inline (no buffer)
    for (std::size_t i = 0; i < P::N; ++i) {
      if (!p.inline_value[i]) continue;
      bool read = false;
      for (std::size_t j = 0; j < P::N; ++j)
        if (p.group_of[j] == g)
          for (int k = 0; k < P::nodes[j].n_in; ++k) read = read || P::nodes[j].in[k] == int(i);
      if (read) s += "      " + detail::node_label<P>(int(i)) + " (inline)\n";
    }
  }
  s += "buffers:\n";
  for (int b = 0; b < p.n_slots; ++b) {
    const slot_info& si = p.slots[std::size_t(b)];
    s += "  " + std::to_string(b) + ": " + std::to_string(si.fixed) + " bytes";
    if (si.per_batch) s += " + " + std::to_string(si.per_batch) + " bytes x batch";
    s += " <-";
    for (std::size_t i = 0; i < P::N; ++i)
      if (p.storage[i] == storage_kind::arena && p.storage_ref[i] == b) s += " %" + std::to_string(i);
    s += "\n";
  }
  s += "arena: " + std::to_string(p.arena_bytes(1)) + " bytes at batch 1\n";
  s += "outputs:";
  for (const auto& o : P::outputs) s += " " + std::string(o.name.view()) + "=%" + std::to_string(o.node);
  s += "\n";
  return s;
}

// GraphViz dot: one cluster per fusion group; inline immediates are drawn dashed.
template <class P> std::string to_dot() {
  const auto& p = P::plan;
  std::string s = "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n";
  auto id = [](std::size_t i) { return "n" + std::to_string(i); };
  for (int g = 0; g < p.n_groups; ++g) {
    const group_info& gi = p.groups[std::size_t(g)];
    s += "  subgraph cluster_" + std::to_string(g) + " {\n    label=\"" + std::string(name_of(gi.kind)) + " " + std::to_string(g) + "\";\n    style=rounded;\n";
    if (gi.anchor >= 0) s += "    " + id(std::size_t(gi.anchor)) + ";\n";
    for (std::size_t i = 0; i < P::N; ++i)
      if (p.group_of[i] == g) s += "    " + id(i) + ";\n";
    s += "  }\n";
  }
  for (std::size_t i = 0; i < P::N; ++i) {
    if (!p.live[i]) continue;
    const node& n = P::nodes[i];
    std::string style = p.inline_value[i] ? ", style=dashed" : (kind_of(n.kind) == op_kind::source ? ", style=filled, fillcolor=lightgrey" : "");
    s += "  " + id(i) + " [label=\"" + detail::node_label<P>(int(i)) + "\"" + style + "];\n";
    for (int k = 0; k < n.n_in; ++k) s += "  " + id(std::size_t(n.in[k])) + " -> " + id(i) + ";\n";
  }
  for (const auto& o : P::outputs) {
    s += "  out_" + std::string(o.name.view()) + " [label=\"" + std::string(o.name.view()) + "\", shape=ellipse];\n";
    s += "  " + id(std::size_t(o.node)) + " -> out_" + std::string(o.name.view()) + ";\n";
  }
  return s + "}\n";
}

}  // namespace kiln
