// Compilation of a graph, done entirely in constant evaluation over the flat node array, as five
// named passes that make_plan runs in order, each reading what the earlier ones wrote:
//   mark_liveness    what the outputs and assigns need, and how many live consumers each node has
//   form_groups      fusion: which nodes share one loop (the rules are fusion_policy's), groups
//                    numbered in root order, and each group's member list
//   assign_storage   where each live value lives: feed, variable, constant, arena, or an alias
//   schedule_groups  the order of the groups, with every assign after the readers of its variable
//   allocate_slots   arena slots by liveness over that order, reused, in place for elementwise loops
// Every pass is linear or N·log N in the number of nodes and edges (allocate_slots: see there):
// recurrences and large models multiply the node count, and all of this runs in the compiler.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <span>
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

// The fusion rules, in one place. make_plan's default is what every program uses; tests pass
// others to see each rule's effect.
struct fusion_policy {
  // An elementwise node whose only consumer is an elementwise, reduction or assign loop over the
  // same shape is computed inside that loop instead of in a buffer of its own. (A reduction loops
  // over its input's shape.) Outputs and nodes with several consumers are always materialized.
  bool fuse_elementwise = true;
  // A producer smaller than the consumer's loop (a broadcast) is recomputed for every element of
  // that loop. Worth it when the producer has at most `small_elements` static elements and either
  // costs at most `cheap_cost` (add, mul, ...: no extra pass) or the loop itself is that small;
  // not for exp/pow/... into a large loop (one materialized value instead of one per element).
  std::int64_t small_elements = 64;
  int cheap_cost = 1;
  // A matmul whose only consumer is an elementwise loop over its product, of the same dtype,
  // writes into that loop's output buffer and the loop reads it in place (an epilogue: bias,
  // activation). One group per loop has at most one such anchor.
  bool matmul_epilogue = true;
  // ... also when the loop reads the product through one reshape (a view: same elements, same
  // order), as conv2d's [?,Ho*Wo,F] product read as [?,Ho,Wo,F].
  bool epilogue_through_reshape = true;
};

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
  // Members of group g (the nodes it computes, in node order):
  // members[group_begin[g]] .. members[group_begin[g + 1] - 1]. Built once by form_groups so that
  // per-group walks cost the group's size, not the graph's.
  std::array<int, N + 1> group_begin{};
  std::array<int, N> members{};
  std::array<int, N> schedule{};        // group indices in execution order
  int n_slots = 0;
  std::array<slot_info, N> slots{};
  std::array<int, N> first_use{}, last_use{};  // schedule positions, for arena values
  int n_feeds = 0, n_variables = 0, n_constants = 0;
  std::array<int, N> feeds{}, variables{}, constants{};
  message_text error{};

  constexpr bool member(int n, int g) const { return group_of[std::size_t(n)] == g; }
  constexpr std::span<const int> members_of(int g) const {
    const int b = group_begin[std::size_t(g)], e = group_begin[std::size_t(g) + 1];
    return {members.data() + b, std::size_t(e - b)};
  }
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

// Element i of a flat array, indexed by the int node and group ids the plan stores.
template <class A> constexpr auto& at(A& a, int i) { return a[std::size_t(i)]; }

// Consumers that evaluate their inputs inside a loop, and so can read immediates without a buffer.
constexpr bool reads_immediate_inline(op consumer) {
  const op_family k = family_of(consumer);
  return k == op_family::elementwise || k == op_family::reduction || k == op_family::state;
}

template <std::size_t N>
constexpr int new_group(plan<N>& p, int root, group_kind kind) {
  at(p.groups, p.n_groups) = group_info{root, kind, -1, -1};
  at(p.group_of, root) = p.n_groups;
  return p.n_groups++;
}

// Nodes that group g reads from buffers (not computed by it and not inline immediates), once per
// reading member: O(the group's members and their inputs).
template <std::size_t N, class F>
constexpr void for_each_buffer_input(const std::array<node, N>& nodes, const plan<N>& p, int g, F&& f) {
  const group_info& gi = at(p.groups, g);
  for (const int i : p.members_of(g)) {
    const node& n = at(nodes, i);
    for (int k = 0; k < n.n_in; ++k) {
      const int x = n.in[k];
      if (at(p.group_of, x) == g || at(p.inline_value, x)) continue;
      if (gi.anchor == x || gi.anchor_view == x) continue;  // written by the group itself
      f(x);
    }
  }
  if (gi.anchor >= 0)
    for (int k = 0; k < at(nodes, gi.anchor).n_in; ++k) f(at(nodes, gi.anchor).in[k]);
}

// The fusion decision for elementwise node i: the group it joins, or -1 for a group of its own.
template <std::size_t N>
constexpr int elementwise_target(const plan<N>& p, const std::array<node, N>& nodes, int i, int consumer,
                                 const fusion_policy& policy) {
  if (!policy.fuse_elementwise || at(p.is_output, i) || at(p.consumers, i) != 1 || consumer < 0) return -1;
  const int g = at(p.group_of, consumer);
  if (g < 0) return -1;
  const group_kind gk = at(p.groups, g).kind;
  if (gk != group_kind::elementwise && gk != group_kind::reduction && gk != group_kind::assign) return -1;
  const node& n = at(nodes, i);
  const node& c = at(nodes, consumer);
  // A reduction iterates over its input's shape, which is this node's shape.
  const bool same_shape = n.out == c.out || family_of(c.kind) == op_family::reduction;
  const node& root = at(nodes, at(p.groups, g).root);
  const shape& loop = gk == group_kind::reduction ? at(nodes, root.in[0]).out : root.out;
  const bool loop_is_small = !loop.dynamic() && loop.static_elements() <= policy.small_elements;
  const bool small_broadcast = !n.out.dynamic() && n.out.static_elements() <= policy.small_elements &&
                               (cost_of(n.kind) <= policy.cheap_cost || loop_is_small);
  return same_shape || small_broadcast ? g : -1;
}

// The epilogue decision for matmul i: anchors it in its consumer's loop and returns true, or false.
template <std::size_t N>
constexpr bool anchor_matmul(plan<N>& p, const std::array<node, N>& nodes, int i, const std::vector<int>& a_consumer,
                             const fusion_policy& policy) {
  if (!policy.matmul_epilogue || at(p.is_output, i) || at(p.consumers, i) != 1) return false;
  int c = at(a_consumer, i);  // the only one
  int view = -1;
  if (policy.epilogue_through_reshape && c >= 0 && at(nodes, c).kind == op::reshape && !at(p.is_output, c) &&
      at(p.consumers, c) == 1) {
    view = c;
    c = at(a_consumer, c);
  }
  const int g = c >= 0 ? at(p.group_of, c) : -1;
  if (g < 0 || family_of(at(nodes, c).kind) != op_family::elementwise) return false;
  group_info& gi = at(p.groups, g);
  const node& root = at(nodes, gi.root);
  const shape& read_as = view >= 0 ? at(nodes, view).out : at(nodes, i).out;
  if (gi.kind != group_kind::elementwise || gi.anchor >= 0 || !(root.out == read_as) || root.type != at(nodes, i).type)
    return false;
  gi.anchor = i;
  gi.anchor_view = view;
  return true;
}

// Groups are created consumers first; renumber them in root order (a topological order). O(N):
// the roots are distinct nodes, so a walk over the nodes meets them in order.
template <std::size_t N>
constexpr void number_groups_in_root_order(plan<N>& p) {
  std::vector<int> renamed(std::size_t(p.n_groups), -1);
  std::vector<group_info> sorted(std::size_t(p.n_groups));
  int next = 0;
  for (int i = 0; i < int(N); ++i) {
    const int g = at(p.group_of, i);
    if (g >= 0 && at(p.groups, g).root == i) {
      at(renamed, g) = next;
      at(sorted, next++) = at(p.groups, g);
    }
  }
  for (int g = 0; g < p.n_groups; ++g) at(p.groups, g) = at(sorted, g);
  for (int i = 0; i < int(N); ++i)
    if (at(p.group_of, i) >= 0) at(p.group_of, i) = at(renamed, at(p.group_of, i));
}

// The member lists (group_begin/members), by counting sort over group_of: O(N).
template <std::size_t N>
constexpr void collect_members(plan<N>& p) {
  for (int g = 0; g <= p.n_groups; ++g) at(p.group_begin, g) = 0;
  for (int i = 0; i < int(N); ++i)
    if (at(p.group_of, i) >= 0) ++at(p.group_begin, at(p.group_of, i) + 1);
  for (int g = 0; g < p.n_groups; ++g) at(p.group_begin, g + 1) += at(p.group_begin, g);
  std::vector<int> fill(p.group_begin.begin(), p.group_begin.begin() + p.n_groups);
  for (int i = 0; i < int(N); ++i)
    if (const int g = at(p.group_of, i); g >= 0) at(p.members, at(fill, g)++) = i;
}

}  // namespace detail

// ---- pass 1: liveness ----------------------------------------------------------------------------------
// Live: what the outputs need, plus every assign. State updates always run (as in a TF2 function):
// a train step built by minimize() is a set of assigns nobody fetches. Writes live, is_output and
// consumers (live consumers, each counted once however many of its inputs read the node).
template <std::size_t N, std::size_t NO>
constexpr void mark_liveness(plan<N>& p, const std::array<node, N>& nodes, const std::array<output_entry, NO>& outputs) {
  p.live = {};
  p.is_output = {};
  p.consumers = {};
  for (const auto& o : outputs) {
    detail::at(p.live, o.node) = true;
    detail::at(p.is_output, o.node) = true;
  }
  for (std::size_t i = 0; i < N; ++i)
    if (nodes[i].kind == op::assign) p.live[i] = true;
  // Inputs always precede their consumers, so one backward sweep closes the set.
  for (std::size_t i = N; i-- > 0;)
    if (p.live[i])
      for (int k = 0; k < nodes[i].n_in; ++k) detail::at(p.live, nodes[i].in[k]) = true;
  for (std::size_t j = 0; j < N; ++j) {
    if (!p.live[j]) continue;
    for (int k = 0; k < nodes[j].n_in; ++k) {
      bool repeated = false;
      for (int q = 0; q < k; ++q) repeated = repeated || nodes[j].in[q] == nodes[j].in[k];
      if (!repeated) ++detail::at(p.consumers, nodes[j].in[k]);
    }
  }
}

// ---- pass 2: fusion --------------------------------------------------------------------------------------
// Walks the live nodes consumers first, so that a producer can join its consumer's group; every
// decision is fusion_policy's. Writes group_of, inline_value, groups (numbered in root order, a
// topological order) and the member lists. Needs mark_liveness.
template <std::size_t N>
constexpr void form_groups(plan<N>& p, const std::array<node, N>& nodes, const fusion_policy& policy = {}) {
  p.n_groups = 0;
  p.inline_value = {};
  for (std::size_t i = 0; i < N; ++i) p.group_of[i] = -1;
  // One pass over the edges: some consumer of each node (the only one where consumers == 1),
  // and whether any consumer needs the node in a buffer (immediates are otherwise read inline).
  std::vector<int> a_consumer(N, -1);
  std::vector<bool> consumed_from_buffer(N, false);
  for (std::size_t j = 0; j < N; ++j) {
    if (!p.live[j]) continue;
    for (int k = 0; k < nodes[j].n_in; ++k) {
      detail::at(a_consumer, nodes[j].in[k]) = int(j);
      if (!detail::reads_immediate_inline(nodes[j].kind)) consumed_from_buffer[std::size_t(nodes[j].in[k])] = true;
    }
  }
  for (int i = int(N) - 1; i >= 0; --i) {
    if (!detail::at(p.live, i)) continue;
    const node& n = detail::at(nodes, i);
    switch (family_of(n.kind)) {
      case op_family::source:
        if (!is_immediate(n.kind)) break;
        if (detail::at(p.is_output, i) || consumed_from_buffer[std::size_t(i)]) detail::new_group(p, i, group_kind::elementwise);
        else detail::at(p.inline_value, i) = true;
        break;
      case op_family::elementwise:
        if (const int g = detail::elementwise_target(p, nodes, i, detail::at(a_consumer, i), policy); g >= 0)
          detail::at(p.group_of, i) = g;
        else
          detail::new_group(p, i, group_kind::elementwise);
        break;
      case op_family::reduction: detail::new_group(p, i, group_kind::reduction); break;
      case op_family::matmul:
        if (!detail::anchor_matmul(p, nodes, i, a_consumer, policy)) detail::new_group(p, i, group_kind::matmul);
        break;
      case op_family::alias: break;
      case op_family::layout: detail::new_group(p, i, group_kind::layout); break;
      case op_family::indexing: detail::new_group(p, i, group_kind::gather); break;
      case op_family::window: detail::new_group(p, i, group_kind::window); break;
      case op_family::state: detail::new_group(p, i, group_kind::assign); break;
      case op_family::composite:  // lowering replaces every composite before planning
        p.error.append("plan: '").append(name_of(n.kind)).append("' is a composite op that lowering did not replace");
        return;
    }
  }
  detail::number_groups_in_root_order(p);
  detail::collect_members(p);
}

// ---- pass 3: storage -------------------------------------------------------------------------------------
// Where each live value lives. storage_ref is the index among feeds/variables/constants, the alias
// target, or (for arena values, filled by allocate_slots) the slot. producer is the node whose
// computation provides the value through aliases. Needs form_groups.
template <std::size_t N>
constexpr void assign_storage(plan<N>& p, const std::array<node, N>& nodes) {
  p.storage = {};
  p.storage_ref = {};
  p.n_feeds = p.n_variables = p.n_constants = 0;
  for (std::size_t i = 0; i < N; ++i) p.producer[i] = int(i);
  for (std::size_t i = 0; i < N; ++i) {
    if (!p.live[i]) continue;
    const node& n = nodes[i];
    if (n.kind == op::placeholder) { p.storage[i] = storage_kind::feed; p.storage_ref[i] = p.n_feeds; detail::at(p.feeds, p.n_feeds++) = int(i); }
    else if (n.kind == op::variable) { p.storage[i] = storage_kind::variable; p.storage_ref[i] = p.n_variables; detail::at(p.variables, p.n_variables++) = int(i); }
    else if (n.kind == op::constant) { p.storage[i] = storage_kind::constant; p.storage_ref[i] = p.n_constants; detail::at(p.constants, p.n_constants++) = int(i); }
    else if (family_of(n.kind) == op_family::alias) { p.storage[i] = storage_kind::alias; p.storage_ref[i] = n.in[0]; p.producer[i] = detail::at(p.producer, n.in[0]); }
    else if (n.kind == op::assign) { p.storage[i] = storage_kind::alias; p.storage_ref[i] = n.in[0]; }  // the variable, updated
    else if (p.group_of[i] >= 0 && detail::at(p.groups, p.group_of[i]).root == int(i)) p.storage[i] = storage_kind::arena;
  }
  // An anchored matmul writes its product into the buffer of the loop that reads it.
  for (int g = 0; g < p.n_groups; ++g)
    if (const int a = detail::at(p.groups, g).anchor; a >= 0) {
      detail::at(p.storage, a) = storage_kind::alias;
      detail::at(p.storage_ref, a) = detail::at(p.groups, g).root;
      detail::at(p.producer, a) = detail::at(p.groups, g).root;
    }
}

// ---- pass 4: schedule ------------------------------------------------------------------------------------
// Kahn's algorithm over the groups, the lowest-numbered ready group first (a min-heap: O(E log G));
// an assign waits for every group that reads the old value of its variable. Writes schedule, or an
// error for a variable assigned twice or an order that cannot exist. Needs assign_storage.
template <std::size_t N>
constexpr void schedule_groups(plan<N>& p, const std::array<node, N>& nodes) {
  const int G = p.n_groups;
  std::vector<int> assign_of_variable(N, -1);
  for (int g = 0; g < G; ++g)
    if (detail::at(p.groups, g).kind == group_kind::assign) {
      const int var = detail::at(nodes, detail::at(p.groups, g).root).in[0];
      if (detail::at(assign_of_variable, var) >= 0) {
        p.error.append("assign: variable '").append(detail::at(nodes, var).name.view()).append("' is assigned twice in one graph");
        return;
      }
      detail::at(assign_of_variable, var) = g;
    }
  // Edges (from, to). Duplicates within one group's inputs are dropped with a stamp per endpoint;
  // the rare duplicate across groups (a reader of a variable that also feeds its assign) is
  // harmless to Kahn's algorithm (counted and released twice).
  std::vector<int> edge_from, edge_to;
  std::vector<int> stamp_from(std::size_t(G), -1), stamp_to(std::size_t(G), -1);
  for (int g = 0; g < G; ++g)
    detail::for_each_buffer_input(nodes, p, g, [&](int x) {
      const int prod = detail::at(p.producer, x);
      if (const int h = detail::at(p.group_of, prod); h >= 0 && h != g && detail::at(stamp_from, h) != g) {
        detail::at(stamp_from, h) = g;
        edge_from.push_back(h);
        edge_to.push_back(g);
      }
      if (const int a = detail::at(assign_of_variable, prod);
          a >= 0 && a != g && detail::at(nodes, prod).kind == op::variable && detail::at(stamp_to, a) != g) {
        detail::at(stamp_to, a) = g;
        edge_from.push_back(g);
        edge_to.push_back(a);
      }
    });
  // Successor lists as CSR.
  std::vector<int> first(std::size_t(G) + 1, 0), successor(edge_from.size()), indegree(std::size_t(G), 0);
  for (std::size_t e = 0; e < edge_from.size(); ++e) {
    ++detail::at(first, edge_from[e] + 1);
    ++detail::at(indegree, edge_to[e]);
  }
  for (int g = 0; g < G; ++g) detail::at(first, g + 1) += detail::at(first, g);
  {
    std::vector<int> fill(first.begin(), first.end() - 1);
    for (std::size_t e = 0; e < edge_from.size(); ++e) detail::at(successor, detail::at(fill, edge_from[e])++) = edge_to[e];
  }
  std::vector<int> ready;
  for (int g = 0; g < G; ++g)
    if (detail::at(indegree, g) == 0) ready.push_back(g);
  std::make_heap(ready.begin(), ready.end(), std::greater<>{});
  for (int pos = 0; pos < G; ++pos) {
    if (ready.empty()) {
      p.error.append("schedule: a variable is read after an assign to it in a way that cannot be ordered; read the assign's result instead");
      return;
    }
    std::pop_heap(ready.begin(), ready.end(), std::greater<>{});
    const int pick = ready.back();
    ready.pop_back();
    detail::at(p.schedule, pos) = pick;
    for (int e = detail::at(first, pick); e < detail::at(first, pick + 1); ++e)
      if (--detail::at(indegree, detail::at(successor, e)) == 0) {
        ready.push_back(detail::at(successor, e));
        std::push_heap(ready.begin(), ready.end(), std::greater<>{});
      }
  }
}

// ---- pass 5: slots ---------------------------------------------------------------------------------------
// Liveness of every arena value over the schedule (first_use/last_use; an output lives to the
// end), then one sweep in schedule order giving each group's result a slot:
//   1. in place: an elementwise loop writes over an input it reads at the same index whose last
//      reader is this loop;
//   2. otherwise the free slot of least waste (|bytes difference|, per-batch bytes weighing 64),
//      lowest slot first on a tie: a free slot of exactly the value's size is found in O(log)
//      through its size class, any other choice scans the free slots;
//   3. otherwise a new slot.
// A slot grows to the largest value it holds and is free again after its value's last use.
// Needs schedule_groups.
template <std::size_t N, std::size_t NO>
constexpr void allocate_slots(plan<N>& p, const std::array<node, N>& nodes, const std::array<output_entry, NO>& outputs) {
  using detail::at;
  const int G = p.n_groups;
  p.n_slots = 0;
  p.slots = {};
  std::vector<int> position(std::size_t(G), 0);
  for (int s = 0; s < G; ++s) at(position, at(p.schedule, s)) = s;
  for (std::size_t i = 0; i < N; ++i) p.first_use[i] = p.last_use[i] = -1;
  for (std::size_t i = 0; i < N; ++i)
    if (p.storage[i] == storage_kind::arena) p.first_use[i] = p.last_use[i] = at(position, p.group_of[i]);
  for (int g = 0; g < G; ++g)
    detail::for_each_buffer_input(nodes, p, g, [&](int x) {
      const int r = p.storage_root(x);
      if (at(p.storage, r) == storage_kind::arena && at(p.last_use, r) < at(position, g)) at(p.last_use, r) = at(position, g);
    });
  for (const auto& o : outputs) {
    const int r = p.storage_root(o.node);
    if (at(p.storage, r) == storage_kind::arena) at(p.last_use, r) = G;
  }

  // Bytes of each group's result, and size classes: the distinct (fixed, per_batch) pairs, sorted.
  struct bytes { std::int64_t fixed = 0, per_batch = 0; };
  auto bytes_of = [&](int root) {
    const node& r = at(nodes, root);
    const std::int64_t elem = std::int64_t(size_of(r.type));
    return r.out.dynamic() ? bytes{0, r.out.static_elements() * elem} : bytes{r.out.static_elements() * elem, 0};
  };
  auto before = [](const bytes& a, const bytes& b) { return a.fixed != b.fixed ? a.fixed < b.fixed : a.per_batch < b.per_batch; };
  std::vector<bytes> classes;
  for (int g = 0; g < G; ++g)
    if (at(p.storage, at(p.groups, g).root) == storage_kind::arena) classes.push_back(bytes_of(at(p.groups, g).root));
  std::sort(classes.begin(), classes.end(), before);
  classes.erase(std::unique(classes.begin(), classes.end(), [](const bytes& a, const bytes& b) { return a.fixed == b.fixed && a.per_batch == b.per_batch; }),
                classes.end());
  auto class_of = [&](const bytes& b) {  // -1 for a size no value has (a slot grown by two shapes)
    auto it = std::lower_bound(classes.begin(), classes.end(), b, before);
    return it != classes.end() && it->fixed == b.fixed && it->per_batch == b.per_batch ? int(it - classes.begin()) : -1;
  };

  // Values whose slot frees at each schedule position (last use + 1), as linked lists.
  std::vector<int> frees_at(std::size_t(G) + 1, -1), next_freed(N, -1);
  for (int i = 0; i < int(N); ++i)
    if (at(p.storage, i) == storage_kind::arena && at(p.last_use, i) < G) {
      at(next_freed, i) = at(frees_at, at(p.last_use, i) + 1);
      at(frees_at, at(p.last_use, i) + 1) = i;
    }
  // Free slots: all of them in one list (swap-remove through free_index), and per size class a
  // min-heap of slot numbers whose stale entries (taken, or since grown) are skipped when met.
  std::vector<int> owner, slot_class, free_list, free_index;
  std::vector<std::vector<int>> free_by_class(classes.size());
  auto release = [&](int q) {
    at(free_index, q) = int(free_list.size());
    free_list.push_back(q);
    if (const int c = at(slot_class, q); c >= 0) {
      at(free_by_class, c).push_back(q);
      std::push_heap(at(free_by_class, c).begin(), at(free_by_class, c).end(), std::greater<>{});
    }
  };
  auto take = [&](int q) {
    const int k = at(free_index, q);
    at(free_list, k) = free_list.back();
    at(free_index, free_list.back()) = k;
    free_list.pop_back();
    at(free_index, q) = -1;
  };

  for (int s = 0; s < G; ++s) {
    for (int v = at(frees_at, s); v >= 0; v = at(next_freed, v))
      if (const int q = at(p.storage_ref, v); at(owner, q) == v) release(q);
    const int g = at(p.schedule, s);
    const int root = at(p.groups, g).root;
    if (at(p.storage, root) != storage_kind::arena) continue;
    const node& r = at(nodes, root);
    const bytes need = bytes_of(root);
    int chosen = -1;
    if (at(p.groups, g).kind == group_kind::elementwise && at(p.groups, g).anchor < 0)
      detail::for_each_buffer_input(nodes, p, g, [&](int x) {
        const int v = p.storage_root(x);
        if (chosen >= 0 || at(p.storage, v) != storage_kind::arena) return;
        if (at(p.last_use, v) == s && at(nodes, x).out == r.out && size_of(at(nodes, x).type) == size_of(r.type) && x == v)
          chosen = at(p.storage_ref, v);
      });
    if (chosen < 0) {
      auto& exact = at(free_by_class, class_of(need));
      while (!exact.empty() && chosen < 0) {
        const int q = exact.front();
        std::pop_heap(exact.begin(), exact.end(), std::greater<>{});
        exact.pop_back();
        if (at(free_index, q) >= 0 && at(slot_class, q) == class_of(need)) chosen = q;
      }
      if (chosen >= 0) take(chosen);
    }
    if (chosen < 0 && !free_list.empty()) {
      std::int64_t best_waste = -1;
      for (const int q : free_list) {
        const slot_info& si = at(p.slots, q);
        const std::int64_t waste = (si.fixed > need.fixed ? si.fixed - need.fixed : need.fixed - si.fixed) +
                                   64 * (si.per_batch > need.per_batch ? si.per_batch - need.per_batch : need.per_batch - si.per_batch);
        if (best_waste < 0 || waste < best_waste || (waste == best_waste && q < chosen)) { best_waste = waste; chosen = q; }
      }
      take(chosen);
    }
    if (chosen < 0) {
      chosen = p.n_slots++;
      owner.push_back(-1);
      slot_class.push_back(-1);
      free_index.push_back(-1);
    }
    slot_info& si = at(p.slots, chosen);
    si.fixed = std::max(si.fixed, need.fixed);
    si.per_batch = std::max(si.per_batch, need.per_batch);
    at(slot_class, chosen) = class_of(bytes{si.fixed, si.per_batch});
    at(owner, chosen) = root;
    at(p.storage_ref, root) = chosen;
  }
}

// The passes in order. A pass that finds an error stops the plan; the program reports p.error.
template <std::size_t N, std::size_t NO>
constexpr plan<N> make_plan(const std::array<node, N>& nodes, const std::array<output_entry, NO>& outputs,
                            const fusion_policy& policy = {}) {
  plan<N> p{};
  mark_liveness(p, nodes, outputs);
  form_groups(p, nodes, policy);
  if (!p.error.empty()) return p;
  assign_storage(p, nodes);
  schedule_groups(p, nodes);
  if (!p.error.empty()) return p;
  allocate_slots(p, nodes, outputs);
  return p;
}

}  // namespace kiln
