// Graph-to-graph rewriting, the machinery of the lowering passes (ops/lowering.hpp): one walk over
// the live nodes in array order (a topological order) that hands each node, its inputs already
// mapped into the new graph, to a rewrite function. The rewrite adds the node's replacement to the
// new graph (the builder functions work there as anywhere) and returns it; graph::emit copies a
// node unchanged. Common subexpressions are merged on the way, and dead nodes are dropped: what
// the outputs need, plus every assign (state updates always run), is live.
#pragma once
#include <vector>
#include "graph.hpp"

namespace kiln {

namespace rewrite_detail {

// Nodes reachable from the outputs and the assigns, one backward pass over the edges.
constexpr std::vector<char> live_nodes(const graph& g) {
  std::vector<char> live(g.nodes.size(), 0);
  for (const output_entry& o : g.outputs) live[std::size_t(o.node)] = 1;
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].kind == op::assign) live[i] = 1;
  for (std::size_t i = g.nodes.size(); i-- > 0;)
    if (live[i])
      for (int k = 0; k < g.nodes[i].n_in; ++k) live[std::size_t(g.nodes[i].in[k])] = 1;
  return live;
}

}  // namespace rewrite_detail

// rewrite(out, n) -> tensor: the replacement of node n (whose inputs already index `out`).
template <class Rewrite> constexpr graph rewrite_graph(const graph& in, Rewrite&& rewrite) {
  graph out;
  out.error = in.error;
  out.seed = in.seed;
  out.pool = in.pool;
  if (!in.ok()) return out;
  const std::vector<char> live = rewrite_detail::live_nodes(in);
  std::vector<int> map(in.nodes.size(), -1);
  for (std::size_t i = 0; i < in.nodes.size() && out.ok(); ++i) {
    if (!live[i]) continue;
    node n = in.nodes[i];
    for (int k = 0; k < n.n_in; ++k) n.in[k] = map[std::size_t(n.in[k])];
    const tensor t = rewrite(out, n);
    map[i] = t.id;
  }
  if (!out.ok()) return out;
  for (const output_entry& o : in.outputs) out.outputs.push_back({o.name, map[std::size_t(o.node)]});
  return out;
}

// Follows op::reshape views back to the node that holds the values.
constexpr int through_reshapes(const graph& g, int id) {
  while (g.at(id).kind == op::reshape) id = g.at(id).in[0];
  return id;
}

}  // namespace kiln
