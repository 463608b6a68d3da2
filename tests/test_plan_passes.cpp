// Each planner pass of graph/plan.hpp on its own, on small graphs built here: liveness, fusion (and
// the fusion_policy switches), storage, schedule and slot allocation. Properties are checked with
// static_assert against plain brute-force recomputations over the node array (every node, every
// pair of values), not against the planner's own bookkeeping.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include "graph/program.hpp"
#include "ops/elementwise.hpp"
#include "ops/layout.hpp"
#include "ops/matmul.hpp"
#include "ops/reduce.hpp"
#include "ops/state.hpp"

using namespace kiln;

namespace {

// The graph exactly as built: no lowering, which would already drop dead nodes.
template <class M> struct built {
  static constexpr std::size_t N = M{}().nodes.size();
  static constexpr std::size_t NO = M{}().outputs.size();
  static constexpr std::array<node, N> nodes = [] {
    const graph g = M{}();
    std::array<node, N> a{};
    for (std::size_t i = 0; i < N; ++i) a[i] = g.nodes[i];
    return a;
  }();
  static constexpr std::array<output_entry, NO> outputs = [] {
    const graph g = M{}();
    std::array<output_entry, NO> a{};
    for (std::size_t i = 0; i < NO; ++i) a[i] = g.outputs[i];
    return a;
  }();
};

enum class upto { liveness, fusion, storage, schedule, slots };

// The passes in make_plan's order, stopping after `last`.
template <class G> constexpr plan<G::N> passes(upto last, const fusion_policy& policy = {}) {
  plan<G::N> p{};
  mark_liveness(p, G::nodes, G::outputs);
  if (last == upto::liveness) return p;
  form_groups(p, G::nodes, policy);
  if (last == upto::fusion || !p.error.empty()) return p;
  assign_storage(p, G::nodes);
  if (last == upto::storage) return p;
  schedule_groups(p, G::nodes);
  if (last == upto::schedule || !p.error.empty()) return p;
  allocate_slots(p, G::nodes, G::outputs);
  return p;
}

template <class G> constexpr int first_node(op k) {
  for (std::size_t i = 0; i < G::N; ++i)
    if (G::nodes[i].kind == k) return int(i);
  return -1;
}
template <class G> constexpr int last_node(op k) {
  for (std::size_t i = G::N; i-- > 0;)
    if (G::nodes[i].kind == k) return int(i);
  return -1;
}
template <std::size_t N> constexpr int position_of(const plan<N>& p, int g) {
  for (int s = 0; s < p.n_groups; ++s)
    if (p.schedule[std::size_t(s)] == g) return s;
  return -1;
}

// The member lists agree with group_of, node by node, in node order.
template <std::size_t N> constexpr bool members_match(const plan<N>& p) {
  for (int g = 0; g < p.n_groups; ++g) {
    std::size_t k = 0;
    const auto m = p.members_of(g);
    for (std::size_t i = 0; i < N; ++i)
      if (p.group_of[i] == g) {
        if (k >= m.size() || m[k] != int(i)) return false;
        ++k;
      }
    if (k != m.size()) return false;
  }
  return true;
}

// ---- liveness -------------------------------------------------------------------------------------------

constexpr auto with_dead_code = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {8});
  tensor v = g.variable("v", f32, {8});
  tensor dead = exp(x) + 3.0;  // read by nothing
  (void)dead;
  assign(v, v + x);            // fetched by nobody, and still a state update
  g.output("y", x * x);        // x read twice by one node: one consumer
  return g;
};
using dead_g = built<decltype(with_dead_code)>;
constexpr auto dead_live = passes<dead_g>(upto::liveness);
template <class G> constexpr int consumer_of(int n) {
  for (std::size_t i = 0; i < G::N; ++i)
    for (int k = 0; k < G::nodes[i].n_in; ++k)
      if (G::nodes[i].in[k] == n) return int(i);
  return -1;
}
static_assert(!dead_live.live[std::size_t(first_node<dead_g>(op::exp))]);
static_assert(!dead_live.live[std::size_t(consumer_of<dead_g>(first_node<dead_g>(op::exp)))]);  // exp(x) + 3.0
static_assert(dead_live.live[std::size_t(first_node<dead_g>(op::assign))]);
static_assert(dead_live.live[std::size_t(first_node<dead_g>(op::variable))]);
static_assert(dead_live.is_output[std::size_t(first_node<dead_g>(op::mul))]);
// x: read by x*x (once, however many inputs) and by v + x; the dead exp does not count
static_assert(dead_live.consumers[std::size_t(first_node<dead_g>(op::placeholder))] == 2);

// Every live node's inputs are live, and every node that reaches an output or an assign is live.
template <class G> constexpr bool liveness_closed() {
  const auto p = passes<G>(upto::liveness);
  std::array<bool, G::N> needed{};
  for (const auto& o : G::outputs) needed[std::size_t(o.node)] = true;
  for (std::size_t i = 0; i < G::N; ++i) needed[i] = needed[i] || G::nodes[i].kind == op::assign;
  // plain fixpoint, no reliance on topological order
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < G::N; ++i)
      if (needed[i])
        for (int k = 0; k < G::nodes[i].n_in; ++k)
          if (!needed[std::size_t(G::nodes[i].in[k])]) changed = needed[std::size_t(G::nodes[i].in[k])] = true;
  }
  for (std::size_t i = 0; i < G::N; ++i)
    if (needed[i] != p.live[i]) return false;
  return true;
}
static_assert(liveness_closed<dead_g>());

// ---- fusion ---------------------------------------------------------------------------------------------

constexpr auto chain_then_matmul = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 16});
  tensor w = g.placeholder("w", f32, {16, 16});
  tensor t = tanh(exp(x) * 2.0 + 1.0);  // one loop
  g.output("y", matmul(t, w));          // fusion stops here: the matmul reads t from a buffer
  return g;
};
using chain_g = built<decltype(chain_then_matmul)>;
constexpr auto chain_fused = passes<chain_g>(upto::fusion);
constexpr int chain_exp = first_node<chain_g>(op::exp), chain_tanh = first_node<chain_g>(op::tanh);
constexpr int chain_mm = first_node<chain_g>(op::matmul);
static_assert(chain_fused.n_groups == 2);
static_assert(chain_fused.group_of[std::size_t(chain_exp)] == chain_fused.group_of[std::size_t(chain_tanh)]);
static_assert(chain_fused.group_of[std::size_t(first_node<chain_g>(op::mul))] == chain_fused.group_of[std::size_t(chain_tanh)]);
static_assert(chain_fused.group_of[std::size_t(first_node<chain_g>(op::add))] == chain_fused.group_of[std::size_t(chain_tanh)]);
static_assert(chain_fused.groups[std::size_t(chain_fused.group_of[std::size_t(chain_tanh)])].root == chain_tanh);
static_assert(chain_fused.groups[std::size_t(chain_fused.group_of[std::size_t(chain_mm)])].kind == group_kind::matmul);
static_assert(chain_fused.group_of[std::size_t(chain_mm)] != chain_fused.group_of[std::size_t(chain_tanh)]);
static_assert(chain_fused.inline_value[std::size_t(first_node<chain_g>(op::scalar))]);  // 2.0 read inside the loop
static_assert(chain_fused.members_of(chain_fused.group_of[std::size_t(chain_tanh)]).size() == 4);  // exp, mul, add, tanh
static_assert(members_match(chain_fused));
// groups numbered in root order
static_assert(chain_fused.groups[0].root < chain_fused.groups[1].root);

// the policy switches: no elementwise fusion gives one group per elementwise node
constexpr auto chain_unfused = passes<chain_g>(upto::fusion, fusion_policy{.fuse_elementwise = false});
static_assert(chain_unfused.n_groups == 5);
static_assert(members_match(chain_unfused));

constexpr auto dense_epilogue = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 16});
  tensor w = g.placeholder("w", f32, {16, 8});
  tensor b = g.placeholder("b", f32, {8});
  g.output("h", relu(matmul(x, w) + b));
  return g;
};
using dense_g = built<decltype(dense_epilogue)>;
constexpr auto dense_fused = passes<dense_g>(upto::fusion);
static_assert(dense_fused.n_groups == 1);
static_assert(dense_fused.groups[0].anchor == first_node<dense_g>(op::matmul));
static_assert(dense_fused.group_of[std::size_t(first_node<dense_g>(op::matmul))] == -1);  // anchored, not a member
constexpr auto dense_no_epilogue = passes<dense_g>(upto::fusion, fusion_policy{.matmul_epilogue = false});
static_assert(dense_no_epilogue.n_groups == 2);
static_assert(dense_no_epilogue.groups[0].kind == group_kind::matmul && dense_no_epilogue.groups[1].anchor == -1);

// the small-broadcast rule: a cheap [4] producer is recomputed inside the [256,4] loop by default
constexpr auto small_broadcast = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {256, 4});
  tensor b = g.placeholder("b", f32, {4});
  g.output("y", x * (b + 1.0));
  return g;
};
using bcast_g = built<decltype(small_broadcast)>;
constexpr int bcast_add = first_node<bcast_g>(op::add), bcast_mul = first_node<bcast_g>(op::mul);
static_assert(passes<bcast_g>(upto::fusion).n_groups == 1);
static_assert(passes<bcast_g>(upto::fusion, fusion_policy{.small_elements = 2}).n_groups == 2);
static_assert(passes<bcast_g>(upto::fusion, fusion_policy{.small_elements = 2}).group_of[std::size_t(bcast_add)] !=
              passes<bcast_g>(upto::fusion, fusion_policy{.small_elements = 2}).group_of[std::size_t(bcast_mul)]);

// ---- storage --------------------------------------------------------------------------------------------

constexpr auto reshaped = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {4, 4});
  tensor v = g.variable("v", f32, {16});
  tensor t = transpose(x);
  tensor r = reshape(t, {16});  // a view of t's buffer
  g.output("r", r);
  g.output("s", reduce_sum(r * v));
  return g;
};
using reshaped_g = built<decltype(reshaped)>;
constexpr auto reshaped_st = passes<reshaped_g>(upto::storage);
constexpr int rs_x = first_node<reshaped_g>(op::placeholder), rs_v = first_node<reshaped_g>(op::variable);
constexpr int rs_t = first_node<reshaped_g>(op::transpose), rs_r = first_node<reshaped_g>(op::reshape);
static_assert(reshaped_st.storage[std::size_t(rs_r)] == storage_kind::alias);
static_assert(reshaped_st.storage_ref[std::size_t(rs_r)] == rs_t);
static_assert(reshaped_st.storage_root(rs_r) == rs_t);
static_assert(reshaped_st.producer[std::size_t(rs_r)] == rs_t);
static_assert(reshaped_st.storage[std::size_t(rs_t)] == storage_kind::arena);
static_assert(reshaped_st.storage[std::size_t(rs_x)] == storage_kind::feed && reshaped_st.feeds[0] == rs_x);
static_assert(reshaped_st.storage[std::size_t(rs_v)] == storage_kind::variable && reshaped_st.variables[0] == rs_v);
static_assert(reshaped_st.n_feeds == 1 && reshaped_st.n_variables == 1);
// an anchored matmul lives in its epilogue loop's buffer
constexpr auto dense_st = passes<dense_g>(upto::storage);
static_assert(dense_st.storage[std::size_t(first_node<dense_g>(op::matmul))] == storage_kind::alias);
static_assert(dense_st.storage_ref[std::size_t(first_node<dense_g>(op::matmul))] == dense_st.groups[0].root);

// ---- schedule -------------------------------------------------------------------------------------------

constexpr auto assign_first = [] {
  graph g;
  tensor v = g.variable("v", f32, {4}, init::arange(1));
  tensor w = g.variable("w", f32, {4});
  tensor updated = assign(v, v * 2.0);            // declared before the readers of v below
  tensor old_t = transpose(reshape(v, {2, 2}));   // reads v before the update
  assign(w, reduce_sum(v) + w);                   // another variable, updated from v's old value
  g.output("new", updated);
  g.output("old_t", old_t);
  return g;
};
using assign_g = built<decltype(assign_first)>;
constexpr auto assign_sched = passes<assign_g>(upto::schedule);
constexpr int v_assign = first_node<assign_g>(op::assign), w_assign = last_node<assign_g>(op::assign);
constexpr int v_group = assign_sched.group_of[std::size_t(v_assign)];
static_assert(assign_sched.error.empty());
static_assert(v_group == 0);  // numbered first (node order)...
// ...and scheduled after every reader of v's old value
static_assert(position_of(assign_sched, v_group) > position_of(assign_sched, assign_sched.group_of[std::size_t(first_node<assign_g>(op::transpose))]));
static_assert(position_of(assign_sched, v_group) > position_of(assign_sched, assign_sched.group_of[std::size_t(first_node<assign_g>(op::reduce_sum))]));
static_assert(position_of(assign_sched, assign_sched.group_of[std::size_t(w_assign)]) >
              position_of(assign_sched, assign_sched.group_of[std::size_t(first_node<assign_g>(op::reduce_sum))]));

// The schedule is a permutation of the groups and every group runs after the groups that
// compute what it reads (checked over every member's inputs, through aliases by hand).
template <std::size_t N> constexpr bool topological(const plan<N>& p, const std::array<node, N>& nodes) {
  std::array<int, N> pos{};
  for (std::size_t g = 0; g < N; ++g) pos[g] = -1;
  for (int s = 0; s < p.n_groups; ++s) {
    const int g = p.schedule[std::size_t(s)];
    if (g < 0 || g >= p.n_groups || pos[std::size_t(g)] >= 0) return false;
    pos[std::size_t(g)] = s;
  }
  for (std::size_t i = 0; i < N; ++i) {
    const int g = p.group_of[i];
    if (g < 0) continue;
    for (int k = 0; k < nodes[i].n_in; ++k) {
      int x = nodes[i].in[k];
      while (p.storage[std::size_t(x)] == storage_kind::alias && nodes[std::size_t(x)].kind != op::assign) x = nodes[std::size_t(x)].in[0];
      for (int a = 0; a < p.n_groups; ++a)  // an anchored matmul runs in its epilogue's group
        if (p.groups[std::size_t(a)].anchor == x) x = p.groups[std::size_t(a)].root;
      const int h = p.group_of[std::size_t(x)];
      if (h >= 0 && h != g && pos[std::size_t(h)] > pos[std::size_t(g)]) return false;
    }
  }
  return true;
}
static_assert(topological(assign_sched, assign_g::nodes));
static_assert(topological(passes<chain_g>(upto::schedule), chain_g::nodes));

constexpr auto assigned_twice = [] {
  graph g;
  tensor v = g.variable("v", f32, {4});
  g.output("a", assign(v, 1.0));
  g.output("b", assign(v, 2.0));
  return g;
};
static_assert(passes<built<decltype(assigned_twice)>>(upto::schedule).error.view().starts_with("assign: variable 'v' is assigned twice"));

// ---- slots ----------------------------------------------------------------------------------------------

// A ladder: a chain of elementwise loops with a matmul (plus epilogue) every third step, a
// transpose copy every fifth, a reduction kept to the end every seventh: values of several sizes
// with overlapping lifetimes.
constexpr auto ladder = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 8, 8});
  tensor w = g.placeholder("w", f32, {8, 8});
  tensor h = x;
  tensor total = g.scalar(0.0, f32);
  for (int i = 0; i < 40; ++i) {
    tensor a = tanh(h * 0.5);
    tensor b = a * h - sigmoid(a);
    if (i % 3 == 2) b = relu(matmul(b, w) + b);
    if (i % 5 == 4) b = transpose(b, {0, 2, 1}) + b;
    if (i % 7 == 6) total = total + reduce_sum(b);
    h = b;
  }
  g.output("y", h);
  g.output("total", total);
  return g;
};
using ladder_g = built<decltype(ladder)>;
constexpr auto ladder_plan = passes<ladder_g>(upto::slots);

// No two arena values share a slot while both are live. They may touch at one position only when
// the later one is an elementwise loop writing in place over an input it reads there.
template <std::size_t N> constexpr bool slots_never_overlap(const plan<N>& p, const std::array<node, N>& nodes) {
  for (std::size_t a = 0; a < N; ++a) {
    if (p.storage[a] != storage_kind::arena) continue;
    const node& na = nodes[a];
    const std::int64_t bytes = std::int64_t(size_of(na.type)) * na.out.static_elements();
    const slot_info& s = p.slots[std::size_t(p.storage_ref[a])];
    if ((na.out.dynamic() ? s.per_batch : s.fixed) < bytes) return false;  // the slot holds the value
    for (std::size_t b = 0; b < N; ++b) {
      if (b == a || p.storage[b] != storage_kind::arena || p.storage_ref[b] != p.storage_ref[a]) continue;
      if (p.first_use[a] > p.first_use[b]) continue;  // each pair once, earlier first
      if (p.last_use[a] < p.first_use[b]) continue;   // disjoint
      if (p.last_use[a] > p.first_use[b]) return false;
      // touching: b must read a inside its own loop, element for element
      bool reads = false;
      for (std::size_t i = 0; i < N; ++i)
        if (p.group_of[i] == p.group_of[b])
          for (int k = 0; k < nodes[i].n_in; ++k) reads = reads || nodes[i].in[k] == int(a);
      if (!reads || p.groups[std::size_t(p.group_of[b])].kind != group_kind::elementwise || !(na.out == nodes[b].out)) return false;
    }
  }
  return true;
}
// first_use/last_use recomputed by brute force from the schedule and every member's inputs
template <std::size_t N, std::size_t NO>
constexpr bool lifetimes_right(const plan<N>& p, const std::array<node, N>& nodes, const std::array<output_entry, NO>& outputs) {
  std::array<int, N> reader_position{};  // where node i's inputs are read: its group's, or its epilogue's, position
  for (std::size_t i = 0; i < N; ++i) {
    int reader_group = p.group_of[i];
    for (int a = 0; a < p.n_groups; ++a)
      if (p.groups[std::size_t(a)].anchor == int(i)) reader_group = a;
    reader_position[i] = p.live[i] && reader_group >= 0 ? position_of(p, reader_group) : -1;
  }
  for (std::size_t v = 0; v < N; ++v) {
    if (p.storage[v] != storage_kind::arena) continue;
    const int made = position_of(p, p.group_of[v]);
    int last = made;
    for (std::size_t i = 0; i < N; ++i)
      for (int k = 0; k < nodes[i].n_in; ++k)
        if (p.storage_root(nodes[i].in[k]) == int(v) && reader_position[i] > last) last = reader_position[i];
    for (const auto& o : outputs)
      if (p.storage_root(o.node) == int(v)) last = p.n_groups;
    if (p.first_use[v] != made || p.last_use[v] != last) return false;
  }
  return true;
}
static_assert(ladder_plan.error.empty());
static_assert(members_match(ladder_plan));
static_assert(topological(ladder_plan, ladder_g::nodes));
static_assert(lifetimes_right(ladder_plan, ladder_g::nodes, ladder_g::outputs));
static_assert(slots_never_overlap(ladder_plan, ladder_g::nodes));
static_assert(ladder_plan.n_slots < 10);  // reuse: far fewer slots than the ~100 arena values
static_assert(slots_never_overlap(passes<assign_g>(upto::slots), assign_g::nodes));
static_assert(slots_never_overlap(passes<reshaped_g>(upto::slots), reshaped_g::nodes));

// Values of one size and no elementwise loops (so nothing in place): greedy reuse in schedule
// order needs exactly as many slots as values are live at once at the busiest position.
constexpr auto copies = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {16, 16});
  tensor a = transpose(x);
  tensor b = transpose(a);
  tensor c = transpose(b);
  tensor d = transpose(c);
  tensor e = transpose(d);
  g.output("y", concat({transpose(e), b}, 0));  // b lives to the end
  return g;
};
using copies_g = built<decltype(copies)>;
constexpr auto copies_plan = passes<copies_g>(upto::slots);
template <std::size_t N> constexpr int busiest(const plan<N>& p) {
  int most = 0;
  for (int s = 0; s <= p.n_groups; ++s) {
    int live = 0;
    for (std::size_t v = 0; v < N; ++v) live += p.storage[v] == storage_kind::arena && p.first_use[v] <= s && s <= p.last_use[v];
    most = live > most ? live : most;
  }
  return most;
}
static_assert(slots_never_overlap(copies_plan, copies_g::nodes));
static_assert(copies_plan.n_slots == busiest(copies_plan));
static_assert(copies_plan.n_slots == 3);  // b, and two alternating for the chain

}  // namespace

// The same checks at run time on the largest graph here, so that a failure names the value.
TEST_CASE("plan.passes.ladder_slots") {
  const auto& p = ladder_plan;
  int arena = 0;
  for (std::size_t v = 0; v < ladder_g::N; ++v) arena += p.storage[v] == storage_kind::arena;
  CHECK(arena > 60);
  CHECK(p.n_slots < 10);
  for (std::size_t a = 0; a < ladder_g::N; ++a)
    for (std::size_t b = a + 1; b < ladder_g::N; ++b) {
      if (p.storage[a] != storage_kind::arena || p.storage[b] != storage_kind::arena || p.storage_ref[a] != p.storage_ref[b]) continue;
      INFO("values ", a, " and ", b, " share slot ", p.storage_ref[a]);
      CHECK((p.last_use[a] <= p.first_use[b] || p.last_use[b] <= p.first_use[a]));
    }
  CHECK(make_plan(ladder_g::nodes, ladder_g::outputs).arena_bytes(4) == p.arena_bytes(4));
}
