// Compilation of a graph, done entirely in constant evaluation over the flat node array:
// liveness, fusion groups, the schedule (with assigns ordered after their variable's readers)
// and a static buffer plan with reuse by liveness.
#pragma once
#include <array>
#include <cstdint>
#include <vector>
#include "node.hpp"
#include "graph.hpp"

namespace kiln {

enum class group_kind : std::uint8_t { elementwise, reduction, matmul, layout, gather, window, assign };
enum class storage_kind : std::uint8_t { none, feed, variable, constant, arena, alias };

constexpr std::string_view name_of(group_kind k) {
  switch (k) {
    case group_kind::elementwise: return "fused elementwise";
    case group_kind::reduction: return "reduction";
    case group_kind::matmul: return "matmul";
    case group_kind::layout: return "layout";
    case group_kind::gather: return "gather";
    case group_kind::window: return "window";
    case group_kind::assign: return "assign";
  }
  return "?";
}

struct group_info {
  int root = -1;
  group_kind kind = group_kind::elementwise;
  int anchor = -1;  // a matmul whose result the group's loop reads in place (its epilogue)
  // the reshape through which the loop reads the anchor (a conv2d's [?,Ho·Wo,F] product viewed as
  // [?,Ho,Wo,F]), or -1 when it reads the product directly
  int anchor_view = -1;
};

// bytes(batch) = fixed + per_batch * batch
struct slot_info {
  std::int64_t fixed = 0, per_batch = 0;
};

constexpr std::int64_t align_bytes(std::int64_t n) { return (n + 63) / 64 * 64; }

template <std::size_t N> struct plan {
  std::array<bool, N> live{};
  std::array<bool, N> is_output{};
  std::array<int, N> consumers{};
  std::array<int, N> group_of{};        // group computing the node, -1 if none
  std::array<bool, N> inline_value{};   // immediates read directly inside fused loops
  std::array<storage_kind, N> storage{};
  std::array<int, N> storage_ref{};     // slot, alias target, or index in feeds/variables/constants
  std::array<int, N> producer{};        // node whose computation provides this value (through aliases)
  int n_groups = 0;
  std::array<group_info, N> groups{};
  std::array<int, N> schedule{};        // group indices in execution order
  int n_slots = 0;
  std::array<slot_info, N> slots{};
  std::array<int, N> first_use{}, last_use{};  // schedule positions, for arena values
  int n_feeds = 0, n_variables = 0, n_constants = 0;
  std::array<int, N> feeds{}, variables{}, constants{};
  message_text error{};

  constexpr bool member(int n, int g) const { return group_of[std::size_t(n)] == g; }
  constexpr bool reads_inline(int n, int g) const { return member(n, g) || inline_value[std::size_t(n)]; }
  constexpr int storage_root(int n) const {
    while (storage[std::size_t(n)] == storage_kind::alias) n = storage_ref[std::size_t(n)];
    return n;
  }
  constexpr int count_groups(group_kind k) const {
    int c = 0;
    for (int g = 0; g < n_groups; ++g) c += groups[std::size_t(g)].kind == k;
    return c;
  }
  constexpr std::int64_t arena_bytes(std::int64_t batch_size) const {
    std::int64_t total = 0;
    for (int s = 0; s < n_slots; ++s) total += align_bytes(slots[std::size_t(s)].fixed + slots[std::size_t(s)].per_batch * batch_size);
    return total;
  }
};

namespace detail {

// Consumers that evaluate their inputs inside a loop, and so can read immediates without a buffer.
constexpr bool reads_immediate_inline(op consumer) {
  const op_family k = family_of(consumer);
  return k == op_family::elementwise || k == op_family::reduction || k == op_family::state;
}

template <std::size_t N>
constexpr int new_group(plan<N>& p, int root, group_kind kind) {
  p.groups[std::size_t(p.n_groups)] = group_info{root, kind, -1, -1};
  p.group_of[std::size_t(root)] = p.n_groups;
  return p.n_groups++;
}

// Nodes that a group reads from buffers (not computed by it and not inline immediates).
template <std::size_t N, class F>
constexpr void for_each_buffer_input(const std::array<node, N>& nodes, const plan<N>& p, int g, F&& f) {
  for (std::size_t i = 0; i < N; ++i) {
    if (p.group_of[i] != g) continue;
    const node& n = nodes[i];
    for (int k = 0; k < n.n_in; ++k) {
      const int x = n.in[k];
      if (p.group_of[std::size_t(x)] == g || p.inline_value[std::size_t(x)]) continue;
      if (p.groups[std::size_t(g)].anchor == x || p.groups[std::size_t(g)].anchor_view == x) continue;  // written by the group itself
      f(x);
    }
  }
  if (const int a = p.groups[std::size_t(g)].anchor; a >= 0)
    for (int k = 0; k < nodes[std::size_t(a)].n_in; ++k) f(nodes[std::size_t(a)].in[k]);
}

}  // namespace detail

template <std::size_t N, std::size_t NO>
constexpr plan<N> make_plan(const std::array<node, N>& nodes, const std::array<output_entry, NO>& outputs) {
  plan<N> p{};
  for (std::size_t i = 0; i < N; ++i) {
    p.group_of[i] = -1;
    p.producer[i] = int(i);
  }
  // 1. liveness: what the outputs need, plus every assign. State updates always run (as in a TF2
  // function): a train step built by minimize() is a set of assigns nobody fetches.
  for (const auto& o : outputs) {
    p.live[std::size_t(o.node)] = true;
    p.is_output[std::size_t(o.node)] = true;
  }
  for (std::size_t i = 0; i < N; ++i)
    if (nodes[i].kind == op::assign) p.live[i] = true;
  for (std::size_t i = N; i-- > 0;)
    if (p.live[i])
      for (int k = 0; k < nodes[i].n_in; ++k) p.live[std::size_t(nodes[i].in[k])] = true;
  for (std::size_t j = 0; j < N; ++j) {
    if (!p.live[j]) continue;
    for (int k = 0; k < nodes[j].n_in; ++k) {
      bool repeated = false;
      for (int q = 0; q < k; ++q) repeated = repeated || nodes[j].in[q] == nodes[j].in[k];
      if (!repeated) ++p.consumers[std::size_t(nodes[j].in[k])];
    }
  }

  // One pass over the edges: some consumer of each node, and whether any consumer needs the
  // node in a buffer (immediates are otherwise read inline).
  std::vector<int> a_consumer(N, -1);
  std::vector<bool> consumed_from_buffer(N, false);
  for (std::size_t j = 0; j < N; ++j) {
    if (!p.live[j]) continue;
    for (int k = 0; k < nodes[j].n_in; ++k) {
      a_consumer[std::size_t(nodes[j].in[k])] = int(j);
      if (!detail::reads_immediate_inline(nodes[j].kind)) consumed_from_buffer[std::size_t(nodes[j].in[k])] = true;
    }
  }

  // 2. fusion, consumers first so that a producer can join its consumer's group
  for (std::size_t ui = N; ui-- > 0;) {
    if (!p.live[ui]) continue;
    const int i = int(ui);
    const node& n = nodes[ui];
    switch (family_of(n.kind)) {
      case op_family::source: {
        if (!is_immediate(n.kind)) break;
        const bool needs_buffer = p.is_output[ui] || consumed_from_buffer[ui];
        if (needs_buffer) detail::new_group(p, i, group_kind::elementwise);
        else p.inline_value[ui] = true;
        break;
      }
      case op_family::elementwise: {
        int target = -1;
        if (!p.is_output[ui] && p.consumers[ui] == 1) {
          const int c = a_consumer[ui];  // the only one
          const int g = c >= 0 ? p.group_of[std::size_t(c)] : -1;
          if (g >= 0) {
            const group_kind gk = p.groups[std::size_t(g)].kind;
            // A reduction iterates over its input's shape, which is this node's shape.
            const bool same_shape = n.out == nodes[std::size_t(c)].out || family_of(nodes[std::size_t(c)].kind) == op_family::reduction;
            // A small producer broadcast into a larger loop is recomputed for every element of
            // that loop: worth it for cheap ops (no extra pass), not for exp/pow/... (one
            // materialized value instead of one per element).
            const node& root = nodes[std::size_t(p.groups[std::size_t(g)].root)];
            const shape& loop = gk == group_kind::reduction ? nodes[std::size_t(root.in[0])].out : root.out;
            const bool loop_is_small = !loop.dynamic() && loop.static_elements() <= 64;
            const bool small_broadcast = !n.out.dynamic() && n.out.static_elements() <= 64 && (cost_of(n.kind) <= 1 || loop_is_small);
            const bool consumer_fuses = gk == group_kind::elementwise || gk == group_kind::assign ||
                                        (gk == group_kind::reduction);
            if (consumer_fuses && (same_shape || small_broadcast)) target = g;
          }
        }
        if (target >= 0) p.group_of[ui] = target;
        else detail::new_group(p, i, group_kind::elementwise);
        break;
      }
      case op_family::reduction: detail::new_group(p, i, group_kind::reduction); break;
      case op_family::matmul: {
        // The epilogue: the only consumer is an elementwise loop over the product's elements,
        // directly or through one reshape (a view: same elements, same order).
        bool anchored = false;
        if (!p.is_output[ui] && p.consumers[ui] == 1) {
          int c = a_consumer[ui];  // the only one
          int view = -1;
          if (c >= 0 && nodes[std::size_t(c)].kind == op::reshape && !p.is_output[std::size_t(c)] && p.consumers[std::size_t(c)] == 1) {
            view = c;
            c = a_consumer[std::size_t(c)];
          }
          const shape& read_as = view >= 0 ? nodes[std::size_t(view)].out : n.out;
          const int g = c >= 0 ? p.group_of[std::size_t(c)] : -1;
          if (g >= 0 && family_of(nodes[std::size_t(c)].kind) == op_family::elementwise &&
              p.groups[std::size_t(g)].kind == group_kind::elementwise && p.groups[std::size_t(g)].anchor < 0 &&
              nodes[std::size_t(p.groups[std::size_t(g)].root)].out == read_as && nodes[std::size_t(p.groups[std::size_t(g)].root)].type == n.type) {
            p.groups[std::size_t(g)].anchor = i;
            p.groups[std::size_t(g)].anchor_view = view;
            anchored = true;
          }
        }
        if (!anchored) detail::new_group(p, i, group_kind::matmul);
        break;
      }
      case op_family::alias: break;
      case op_family::layout: detail::new_group(p, i, group_kind::layout); break;
      case op_family::indexing: detail::new_group(p, i, group_kind::gather); break;
      case op_family::window: detail::new_group(p, i, group_kind::window); break;
      case op_family::state: detail::new_group(p, i, group_kind::assign); break;
      case op_family::composite:  // lowering replaces every composite before planning
        p.error.append("plan: '").append(name_of(n.kind)).append("' is a composite op that lowering did not replace");
        return p;
    }
  }
  // Groups were created consumers-first; renumber them in root order (a topological order).
  {
    std::array<int, N> order{};
    for (int g = 0; g < p.n_groups; ++g) order[std::size_t(g)] = g;
    for (int a = 0; a < p.n_groups; ++a)
      for (int b = a + 1; b < p.n_groups; ++b)
        if (p.groups[std::size_t(order[std::size_t(b)])].root < p.groups[std::size_t(order[std::size_t(a)])].root) {
          int t = order[std::size_t(a)];
          order[std::size_t(a)] = order[std::size_t(b)];
          order[std::size_t(b)] = t;
        }
    std::array<int, N> renamed{};
    std::array<group_info, N> sorted{};
    for (int g = 0; g < p.n_groups; ++g) {
      renamed[std::size_t(order[std::size_t(g)])] = g;
      sorted[std::size_t(g)] = p.groups[std::size_t(order[std::size_t(g)])];
    }
    p.groups = sorted;
    for (std::size_t i = 0; i < N; ++i)
      if (p.group_of[i] >= 0) p.group_of[i] = renamed[std::size_t(p.group_of[i])];
  }

  // 3. storage of every live value
  for (std::size_t i = 0; i < N; ++i) {
    if (!p.live[i]) continue;
    const node& n = nodes[i];
    if (n.kind == op::placeholder) { p.storage[i] = storage_kind::feed; p.storage_ref[i] = p.n_feeds; p.feeds[std::size_t(p.n_feeds++)] = int(i); }
    else if (n.kind == op::variable) { p.storage[i] = storage_kind::variable; p.storage_ref[i] = p.n_variables; p.variables[std::size_t(p.n_variables++)] = int(i); }
    else if (n.kind == op::constant) { p.storage[i] = storage_kind::constant; p.storage_ref[i] = p.n_constants; p.constants[std::size_t(p.n_constants++)] = int(i); }
    else if (family_of(n.kind) == op_family::alias) { p.storage[i] = storage_kind::alias; p.storage_ref[i] = n.in[0]; p.producer[i] = p.producer[std::size_t(n.in[0])]; }
    else if (n.kind == op::assign) { p.storage[i] = storage_kind::alias; p.storage_ref[i] = n.in[0]; }
    else if (p.group_of[i] >= 0 && p.groups[std::size_t(p.group_of[i])].root == int(i)) p.storage[i] = storage_kind::arena;
  }
  for (int g = 0; g < p.n_groups; ++g)
    if (const int a = p.groups[std::size_t(g)].anchor; a >= 0) {
      p.storage[std::size_t(a)] = storage_kind::alias;
      p.storage_ref[std::size_t(a)] = p.groups[std::size_t(g)].root;
      p.producer[std::size_t(a)] = p.groups[std::size_t(g)].root;
    }

  // Buffer inputs of every group, gathered once (the passes below need them repeatedly).
  std::vector<std::vector<int>> inputs(std::size_t(p.n_groups));
  for (int g = 0; g < p.n_groups; ++g)
    detail::for_each_buffer_input(nodes, p, g, [&](int x) { inputs[std::size_t(g)].push_back(x); });

  // 4. schedule: Kahn's algorithm over groups, lowest root first; an assign waits for every
  //    group that reads the old value of its variable.
  {
    std::vector<std::vector<int>> successors(std::size_t(p.n_groups));
    std::vector<int> indegree(std::size_t(p.n_groups), 0);
    auto edge = [&](int from, int to) {
      for (int t : successors[std::size_t(from)])
        if (t == to) return;
      successors[std::size_t(from)].push_back(to);
      ++indegree[std::size_t(to)];
    };
    std::vector<int> assign_of_variable(N, -1);
    for (int g = 0; g < p.n_groups; ++g)
      if (p.groups[std::size_t(g)].kind == group_kind::assign) {
        const int var = nodes[std::size_t(p.groups[std::size_t(g)].root)].in[0];
        if (assign_of_variable[std::size_t(var)] >= 0) {
          p.error.append("assign: variable '").append(nodes[std::size_t(var)].name.view()).append("' is assigned twice in one graph");
          return p;
        }
        assign_of_variable[std::size_t(var)] = g;
      }
    for (int g = 0; g < p.n_groups; ++g)
      for (int x : inputs[std::size_t(g)]) {
        const int prod = p.producer[std::size_t(x)];
        const int h = p.group_of[std::size_t(prod)];
        if (h >= 0 && h != g) edge(h, g);
        const int a = assign_of_variable[std::size_t(prod)];
        if (a >= 0 && a != g && nodes[std::size_t(prod)].kind == op::variable) edge(g, a);
      }
    std::vector<bool> done(std::size_t(p.n_groups), false);
    for (int pos = 0; pos < p.n_groups; ++pos) {
      int pick = -1;
      for (int g = 0; g < p.n_groups && pick < 0; ++g)
        if (!done[std::size_t(g)] && indegree[std::size_t(g)] == 0) pick = g;
      if (pick < 0) {
        p.error.append("schedule: a variable is read after an assign to it in a way that cannot be ordered; read the assign's result instead");
        return p;
      }
      done[std::size_t(pick)] = true;
      p.schedule[std::size_t(pos)] = pick;
      for (int t : successors[std::size_t(pick)]) --indegree[std::size_t(t)];
    }
  }

  // 5. buffers: liveness over the schedule, greedy reuse, in place for elementwise loops
  {
    std::array<int, N> position{};
    for (int s = 0; s < p.n_groups; ++s) position[std::size_t(p.schedule[std::size_t(s)])] = s;
    for (std::size_t i = 0; i < N; ++i) {
      p.first_use[i] = -1;
      p.last_use[i] = -1;
    }
    for (std::size_t i = 0; i < N; ++i)
      if (p.storage[i] == storage_kind::arena) p.first_use[i] = p.last_use[i] = position[std::size_t(p.group_of[i])];
    for (int g = 0; g < p.n_groups; ++g)
      for (int x : inputs[std::size_t(g)]) {
        const int r = p.storage_root(x);
        if (p.storage[std::size_t(r)] == storage_kind::arena && p.last_use[std::size_t(r)] < position[std::size_t(g)])
          p.last_use[std::size_t(r)] = position[std::size_t(g)];
      }
    for (const auto& o : outputs) {
      const int r = p.storage_root(o.node);
      if (p.storage[std::size_t(r)] == storage_kind::arena) p.last_use[std::size_t(r)] = p.n_groups;
    }
    std::array<int, N> slot_owner_end{};  // last use of the value currently in each slot
    for (int s = 0; s < p.n_groups; ++s) {
      const int g = p.schedule[std::size_t(s)];
      const int root = p.groups[std::size_t(g)].root;
      if (p.storage[std::size_t(root)] != storage_kind::arena) continue;
      const node& r = nodes[std::size_t(root)];
      const std::int64_t elem = std::int64_t(size_of(r.type));
      const std::int64_t fixed = r.out.dynamic() ? 0 : r.out.static_elements() * elem;
      const std::int64_t per_batch = r.out.dynamic() ? r.out.static_elements() * elem : 0;
      int chosen = -1;
      // in place: an input read at the same index whose last reader is this loop
      if (p.groups[std::size_t(g)].kind == group_kind::elementwise && p.groups[std::size_t(g)].anchor < 0) {
        for (int x : inputs[std::size_t(g)]) {
          const int v = p.storage_root(x);
          if (chosen >= 0 || p.storage[std::size_t(v)] != storage_kind::arena) continue;
          if (p.last_use[std::size_t(v)] == s && nodes[std::size_t(x)].out == r.out && size_of(nodes[std::size_t(x)].type) == size_of(r.type) && x == v)
            chosen = p.storage_ref[std::size_t(v)];
        }
      }
      if (chosen < 0) {
        std::int64_t best_waste = -1;
        for (int q = 0; q < p.n_slots; ++q) {
          if (slot_owner_end[std::size_t(q)] >= s) continue;
          const slot_info& si = p.slots[std::size_t(q)];
          const std::int64_t waste = (si.fixed > fixed ? si.fixed - fixed : fixed - si.fixed) +
                                     64 * (si.per_batch > per_batch ? si.per_batch - per_batch : per_batch - si.per_batch);
          if (best_waste < 0 || waste < best_waste) { best_waste = waste; chosen = q; }
        }
      }
      if (chosen < 0) chosen = p.n_slots++;
      slot_info& si = p.slots[std::size_t(chosen)];
      if (si.fixed < fixed) si.fixed = fixed;
      if (si.per_batch < per_batch) si.per_batch = per_batch;
      slot_owner_end[std::size_t(chosen)] = p.last_use[std::size_t(root)];
      p.storage_ref[std::size_t(root)] = chosen;
    }
  }
  return p;
}

}  // namespace kiln
