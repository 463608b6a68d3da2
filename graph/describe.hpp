// Human-readable views of what the compiler did: the plan as text and the graph as GraphViz dot
// with one cluster per fusion group.
#pragma once
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>
#include "../runtime/view.hpp"
#include "program.hpp"

namespace kiln {

// The attributes of a node as text ("transpose_b", "axes 1..2 keepdims", "3x3 stride 2", ...).
inline std::string attribute_text(const node& n) {
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return std::string(b);
  };
  auto i64 = [](std::int64_t v) { return std::to_string(v); };
  switch (n.kind) {
    case op::scalar: case op::fill: return num(immediate_attrs::of(n).value);
    case op::iota: {
      const iota_attrs a = iota_attrs::of(n);
      return "start " + num(a.start) + " step " + num(a.step);
    }
    case op::variable: {
      std::string s;
      if (n.has(flag_trainable)) s += "trainable";
      if (n.has(flag_metric_state)) s += s.empty() ? "metric state" : ", metric state";
      return s.empty() ? "non-trainable" : s;
    }
    default: break;
  }
  switch (family_of(n.kind)) {
    case op_family::reduction: {
      const reduce_attrs a = reduce_attrs::of(n);
      return "axes " + i64(a.first) + ".." + i64(a.last) + (a.keepdims ? " keepdims" : "");
    }
    case op_family::matmul: {
      const matmul_attrs a = matmul_attrs::of(n);
      std::string s;
      auto flag = [&s](bool on, const char* name) { if (on) s += s.empty() ? name : std::string(", ") + name; };
      flag(a.transpose_a, "transpose_a");
      flag(a.transpose_b, "transpose_b");
      flag(a.fold_rows, "fold_rows");
      return s;
    }
    case op_family::composite:
      if (n.kind == op::softmax || n.kind == op::log_softmax) return "axis " + i64(axis_attrs::of(n).axis);
      if (n.kind == op::batch_norm) return "epsilon " + num(normalization_attrs::of(n).epsilon);
      if (n.kind == op::fully_connected) return std::string(name_of(fully_connected_attrs::of(n).activation));
      if (n.kind != op::conv2d && n.kind != op::conv2d_backprop_input && n.kind != op::conv2d_backprop_filter && n.kind != op::avg_pool2d)
        return "";
      [[fallthrough]];  // the convolutions and pools carry a window geometry
    case op_family::window: {
      const window_geometry w = window_geometry::of(n);
      std::string s = i64(w.kh) + "x" + i64(w.kw) + " stride " + i64(w.stride) + " out " + i64(w.ho) + "x" + i64(w.wo);
      if (w.top || w.left || w.bottom || w.right) s += " pad " + i64(w.top) + "," + i64(w.left) + "," + i64(w.bottom) + "," + i64(w.right);
      if (w.positive_only) s += " positive_only";
      return s;
    }
    default: break;
  }
  switch (n.kind) {
    case op::transpose: {
      const transpose_attrs a = transpose_attrs::of(n);
      std::string s = "perm";
      for (int d = 0; d < a.rank; ++d) s += (d ? "," : " ") + i64(a.perm[d]);
      return s;
    }
    case op::slice: {
      const slice_attrs a = slice_attrs::of(n);
      return "axis " + i64(a.axis) + " from " + i64(a.begin);
    }
    case op::concat: return "axis " + i64(concat_attrs::of(n).axis);
    case op::gather: {
      const gather_attrs a = gather_attrs::of(n);
      return "axis " + i64(a.axis) + (a.batch_dims ? " batch_dims " + i64(a.batch_dims) : "");
    }
    case op::custom_gradient: return "rule " + i64(custom_gradient_attrs::of(n).rule);
    default: return "";
  }
}

namespace detail {
template <std::size_t N> std::string node_label(const std::array<node, N>& nodes, int i) {
  const node& n = nodes[std::size_t(i)];
  std::string s = "%" + std::to_string(i) + " " + std::string(name_of(n.kind));
  if (!n.name.empty()) s += " '" + std::string(n.name.view()) + "'";
  if (const std::string a = attribute_text(n); !a.empty()) s += " (" + a + ")";
  s += " " + std::string(name_of(n.type)) + to_string(n.out);
  return s;
}
template <class P> std::string node_label(int i) { return node_label(P::nodes, i); }
}  // namespace detail

// The model as the user wrote it (after differentiation, before lowering): every node with its
// attributes and inputs. This is the view exporters walk.
template <class P> std::string describe_model() {
  std::string s = "model: " + std::to_string(P::NM) + " nodes\n";
  for (std::size_t i = 0; i < P::NM; ++i) {
    const node& n = P::model_nodes[i];
    s += "  " + detail::node_label(P::model_nodes, int(i));
    for (int k = 0; k < n.n_in; ++k) s += (k ? ", %" : " <- %") + std::to_string(n.in[k]);
    s += "\n";
  }
  s += "outputs:";
  for (const auto& o : P::model_outputs) s += " " + std::string(o.name.view()) + "=%" + std::to_string(o.node);
  return s + "\n";
}

// The plan: groups in execution order with their nodes (after lowering), buffers and bytes.
template <class P> std::string describe_plan() {
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
    if (gi.anchor_view >= 0) s += " (read through view %" + std::to_string(gi.anchor_view) + ")";
    s += " -> %" + std::to_string(gi.root);
    const int root_storage = p.storage_root(gi.root);
    if (p.storage[std::size_t(root_storage)] == storage_kind::arena) s += " in buffer " + std::to_string(p.storage_ref[std::size_t(root_storage)]);
    else if (p.storage[std::size_t(root_storage)] == storage_kind::variable) s += " into variable '" + std::string(P::nodes[std::size_t(root_storage)].name.view()) + "'";
    s += "\n";
    if (gi.anchor >= 0) s += "      " + detail::node_label<P>(gi.anchor) + "\n";
    for (const int i : p.members_of(g)) s += "      " + detail::node_label<P>(i) + "\n";
    // immediates the loop reads inline (no buffer), in node order
    std::vector<int> inline_reads;
    for (const int j : p.members_of(g))
      for (int k = 0; k < P::nodes[std::size_t(j)].n_in; ++k)
        if (const int x = P::nodes[std::size_t(j)].in[k]; p.inline_value[std::size_t(x)]) inline_reads.push_back(x);
    std::sort(inline_reads.begin(), inline_reads.end());
    inline_reads.erase(std::unique(inline_reads.begin(), inline_reads.end()), inline_reads.end());
    for (const int i : inline_reads) s += "      " + detail::node_label<P>(i) + " (inline)\n";
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

// Both views: the model as written, then the plan that runs it.
template <class P> std::string describe() { return describe_model<P>() + describe_plan<P>(); }

// GraphViz dot of the model as written (no fusion groups: lowering has not run yet).
template <class P> std::string to_dot_model() {
  std::string s = "digraph kiln_model {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n";
  for (std::size_t i = 0; i < P::NM; ++i) {
    const node& n = P::model_nodes[i];
    const std::string style = family_of(n.kind) == op_family::source ? ", style=filled, fillcolor=lightgrey" : "";
    s += "  n" + std::to_string(i) + " [label=\"" + detail::node_label(P::model_nodes, int(i)) + "\"" + style + "];\n";
    for (int k = 0; k < n.n_in; ++k) s += "  n" + std::to_string(n.in[k]) + " -> n" + std::to_string(i) + ";\n";
  }
  for (const auto& o : P::model_outputs) {
    s += "  out_" + std::string(o.name.view()) + " [label=\"" + std::string(o.name.view()) + "\", shape=ellipse];\n";
    s += "  n" + std::to_string(o.node) + " -> out_" + std::string(o.name.view()) + ";\n";
  }
  return s + "}\n";
}

// GraphViz dot of the plan: one cluster per fusion group; inline immediates are drawn dashed.
template <class P> std::string to_dot() {
  const auto& p = P::plan;
  std::string s = "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=monospace];\n";
  auto id = [](std::size_t i) { return "n" + std::to_string(i); };
  for (int g = 0; g < p.n_groups; ++g) {
    const group_info& gi = p.groups[std::size_t(g)];
    s += "  subgraph cluster_" + std::to_string(g) + " {\n    label=\"" + std::string(name_of(gi.kind)) + " " + std::to_string(g) + "\";\n    style=rounded;\n";
    if (gi.anchor >= 0) s += "    " + id(std::size_t(gi.anchor)) + ";\n";
    for (const int i : p.members_of(g)) s += "    " + id(std::size_t(i)) + ";\n";
    s += "  }\n";
  }
  for (std::size_t i = 0; i < P::N; ++i) {
    if (!p.live[i]) continue;
    const node& n = P::nodes[i];
    std::string style = p.inline_value[i] ? ", style=dashed" : (family_of(n.kind) == op_family::source ? ", style=filled, fillcolor=lightgrey" : "");
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
