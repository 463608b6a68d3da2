// The executor contract shared by every backend: feed binding and validation, output access,
// alias resolution and the walk over the plan's groups are written here once; a backend supplies
// only its memory and one kernel per group kind.
//
// A backend's kernels are a type with
//   static constexpr std::string_view backend_name = "cpu";
//   template <int G> void run(group_tag<group_kind::reduction>, group_index<G>);   // one per kind
// The walk (run_schedule) calls the overload of each group's kind in schedule order. A plan that
// contains a group kind the backend has no overload for does not compile: the first error line
// is the instantiation of kiln::backend_error<"kiln: the cuda backend has no kernel for group
// kind 'window'">.
//
// Gather faults: a run that meets an out-of-range gather index throws and changes no variable.
// Indices that are a feed (labels, actions, token ids; directly or through a reshape) are checked
// when the feeds are bound, before any group runs, and the error names the feed
// (check_feed_indices). For indices computed inside the graph, no group scheduled after the
// faulting gather changes a variable (the CPU throws from the gather itself; the CUDA backend's
// assign kernels test the device fault flag before they write), and the CPU executor restores
// the variables of assigns scheduled before such a gather (rollback_set).
//
// Sizes: feed dims and the batch size come from the user. bind_feeds rejects negative extents,
// element counts that overflow int64, and batch sizes whose memory this plan could not even
// count (max_batch_size); every size product a backend forms from the batch then fits in int64.
// Batch 0 is an error for a plan that assigns variables (a step on no samples would still move
// optimizer step counters and batch-norm statistics); a plan without assigns runs and returns
// empty outputs.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include "../graph/program.hpp"
#include "checked.hpp"
#include "error.hpp"
#include "outputs.hpp"
#include "view.hpp"

namespace kiln {

// ---- the group walk -----------------------------------------------------------------------------

template <group_kind K> struct group_tag {
  static constexpr group_kind kind = K;
};
template <int G> using group_index = std::integral_constant<int, G>;

// Whether `Kernels` has a kernel for group kind K (an overload of run for group_tag<K>).
template <class Kernels, group_kind K>
inline constexpr bool supports_group = requires(Kernels& k) { k.run(group_tag<K>{}, group_index<0>{}); };

// Instantiated with a non-empty message when a backend lacks a kernel the plan needs: the
// compiler's first error line shows the message inside the template argument.
template <message_text Message> struct backend_error {
  static_assert(Message.size == 0, "kiln: a backend has no kernel for a group kind of this plan; the backend and the kind are named inside backend_error<...> above");
  static constexpr bool ok = true;
};

constexpr message_text missing_kernel_message(std::string_view backend, group_kind kind, bool supported) {
  message_text m;
  if (supported) return m;
  m.append("kiln: the ").append(backend).append(" backend has no kernel for group kind '").append(name_of(kind)).append("'");
  return m;
}

// Runs group G of P's plan with the backend's kernel for its kind.
template <class P, int G, class Kernels> void run_group(Kernels& kernels) {
  constexpr group_kind kind = P::plan.groups[std::size_t(G)].kind;
  constexpr bool supported = supports_group<Kernels, kind>;
  static_assert(backend_error<missing_kernel_message(Kernels::backend_name, kind, supported)>::ok);
  if constexpr (supported) kernels.run(group_tag<kind>{}, group_index<G>{});
}

// Every group of the plan, in schedule order.
template <class P, class Kernels> void run_schedule(Kernels& kernels) {
  [&]<std::size_t... S>(std::index_sequence<S...>) {
    (run_group<P, P::plan.schedule[S]>(kernels), ...);
  }(std::make_index_sequence<std::size_t(P::plan.n_groups)>{});
}

// ---- feeds ----------------------------------------------------------------------------------------

// The data of every feed slot of P's plan (in plan.feeds order) and the batch size they agree on.
template <class P> struct bound_feeds {
  std::array<const void*, std::size_t(P::plan.n_feeds) + 1> data{};
  std::int64_t batch_size = 1;
  std::string_view batch_feed;  // a feed the batch size came from (for messages); empty when static
};

// Bytes the plan could need at batch b, bounded above by fixed + per_batch * b: every arena slot,
// every node's own value (feeds, outputs, staging), counted separately so that any sum a backend
// forms of them (with its alignment and padding) is covered.
template <class P> struct batch_bytes {
  static constexpr std::int64_t slack_per_buffer = 2 * 4096 + 64;  // alignment and page padding
  static constexpr std::int64_t fixed = [] {
    std::int64_t f = 0;
    for (int s = 0; s < P::plan.n_slots; ++s) f += P::plan.slots[std::size_t(s)].fixed + slack_per_buffer;
    for (std::size_t i = 0; i < P::N; ++i)
      if (!P::nodes[i].out.dynamic()) f += P::nodes[i].out.static_elements() * std::int64_t(size_of(P::nodes[i].type)) + slack_per_buffer;
    return f;
  }();
  static constexpr std::int64_t per_batch = [] {
    std::int64_t b = 0;
    for (int s = 0; s < P::plan.n_slots; ++s) b += P::plan.slots[std::size_t(s)].per_batch;
    for (std::size_t i = 0; i < P::N; ++i)
      if (P::nodes[i].out.dynamic()) b += P::nodes[i].out.static_elements() * std::int64_t(size_of(P::nodes[i].type));
    return b;
  }();
};

// The largest batch size whose sizes (bytes of every value and of the whole arena, with padding)
// stay below 2^62: beyond it the arithmetic itself would overflow, long before any allocation
// could succeed.
template <class P> constexpr std::int64_t max_batch_size() {
  constexpr std::int64_t limit = std::int64_t(1) << 62;
  constexpr std::int64_t room = limit - batch_bytes<P>::fixed;
  return batch_bytes<P>::per_batch > 0 ? room / batch_bytes<P>::per_batch : limit;
}

template <class P> constexpr bool plan_assigns() { return P::plan.count_groups(group_kind::assign) > 0; }

template <class P> bool declared_placeholder(std::string_view name) {
  for (const node& n : P::model_nodes)  // placeholders lowering dropped as unused included
    if (n.kind == op::placeholder && n.name.view() == name) return true;
  return false;
}

template <class P> std::string placeholder_list() {
  std::string s;
  for (const node& n : P::model_nodes)
    if (n.kind == op::placeholder && n.name.view().substr(0, 1) != "~") s += (s.empty() ? "" : ", ") + std::string(n.name.view());
  return s.empty() ? "(none)" : s;
}

// Checks every feed against its placeholder: a known name (a declared placeholder that no output
// needs is accepted and ignored), the dtype, the rank, every static dim, one batch size across
// all feeds, data present; and that every needed placeholder is fed. Messages are built only on
// failure: the hot path does not allocate.
template <class P> bound_feeds<P> bind_feeds(std::span<const feed> feeds) {
  constexpr const auto& plan = P::plan;
  bound_feeds<P> out;
  std::array<bool, std::size_t(plan.n_feeds) + 1> bound{};
  std::int64_t batch_size = -1;
  const char* batch_from = nullptr;
  for (const feed& f : feeds) {
    int slot = -1;
    for (int i = 0; i < plan.n_feeds && slot < 0; ++i)
      if (P::nodes[std::size_t(plan.feeds[std::size_t(i)])].name.view() == f.name) slot = i;
    if (slot < 0) {
      if (declared_placeholder<P>(f.name)) continue;
      throw error("kiln: feed '" + std::string(f.name) + "' matches no placeholder; placeholders are: " + placeholder_list<P>());
    }
    const node& n = P::nodes[std::size_t(plan.feeds[std::size_t(slot)])];
    auto mismatch = [&] {
      return error("kiln: placeholder '" + std::string(f.name) + "' expects " + std::string(name_of(n.type)) + " " + to_string(n.out) + ", got " +
                   std::string(name_of(f.value.type)) + " " + to_string(f.value.shape));
    };
    if (bound[std::size_t(slot)]) throw error("kiln: placeholder '" + std::string(f.name) + "' is fed twice");
    if (f.value.type != n.type || f.value.shape.rank != n.out.rank) throw mismatch();
    for (int d = 0; d < n.out.rank; ++d) {
      if (n.out.dim[d] == batch) {
        if (f.value.shape.d[d] < 0)
          throw error("kiln: feed '" + std::string(f.name) + "' has a negative batch size " + std::to_string(f.value.shape.d[d]) + " (shape " +
                      to_string(f.value.shape) + ")");
        if (batch_size >= 0 && f.value.shape.d[d] != batch_size)
          throw error("kiln: placeholder '" + std::string(f.name) + "' has batch " + std::to_string(f.value.shape.d[d]) + " but '" +
                      std::string(batch_from) + "' has batch " + std::to_string(batch_size));
        batch_size = f.value.shape.d[d];
        batch_from = n.name.text;
      } else if (f.value.shape.d[d] != n.out.dim[d]) {
        throw mismatch();
      }
    }
    // Negative or overflowing extents never reach a size computation (a view made from a raw
    // pointer has no size check of its own).
    const std::int64_t elements = f.value.shape.checked_elements();
    std::int64_t feed_bytes = 0;
    if (elements < 0 || !checked_mul(elements, std::int64_t(size_of(n.type)), feed_bytes))
      throw error("kiln: feed '" + std::string(f.name) + "' has shape " + to_string(f.value.shape) + ", which " +
                  (elements < 0 ? f.value.shape.problem() : "has more bytes than int64 can count"));
    if (!f.value.data && elements > 0) throw error("kiln: feed '" + std::string(f.name) + "' has no data");
    bound[std::size_t(slot)] = true;
    out.data[std::size_t(slot)] = f.value.data;
  }
  for (int i = 0; i < plan.n_feeds; ++i)
    if (!bound[std::size_t(i)]) {
      const node& n = P::nodes[std::size_t(plan.feeds[std::size_t(i)])];
      throw error("kiln: missing feed for placeholder '" + std::string(n.name.view()) + "' (" + std::string(name_of(n.type)) + " " +
                  to_string(n.out) + ")");
    }
  if (batch_size > max_batch_size<P>())
    throw error("kiln: feed '" + std::string(batch_from) + "' has batch size " + std::to_string(batch_size) +
                ", more than this graph can size in memory (at most " + std::to_string(max_batch_size<P>()) + ")");
  if constexpr (plan_assigns<P>())
    if (batch_size == 0)
      throw error("kiln: feed '" + std::string(batch_from) +
                  "' has batch size 0, but this graph assigns variables (a step on no samples would still change them); skip the run instead");
  out.batch_size = batch_size < 0 ? 1 : batch_size;
  if (batch_from) out.batch_feed = batch_from;
  return out;
}

// ---- gather indices that are feeds ------------------------------------------------------------

// A gather whose indices are a feed (directly or through aliases such as a reshape): its indices
// can be checked before any group runs.
struct fed_gather {
  int group = -1, feed_slot = -1, indices_node = -1, params_node = -1;
  std::int64_t axis_size = 0;
};

template <class P> struct fed_gathers {
  static constexpr int count = [] {
    int c = 0;
    for (int g = 0; g < P::plan.n_groups; ++g) {
      const group_info& info = P::plan.groups[std::size_t(g)];
      if (info.kind != group_kind::gather) continue;
      const int r = P::plan.storage_root(P::nodes[std::size_t(info.root)].in[1]);
      c += P::plan.storage[std::size_t(r)] == storage_kind::feed;
    }
    return c;
  }();
  static constexpr std::array<fed_gather, std::size_t(count)> list = [] {
    std::array<fed_gather, std::size_t(count)> a{};
    std::size_t k = 0;
    for (int g = 0; g < P::plan.n_groups; ++g) {
      const group_info& info = P::plan.groups[std::size_t(g)];
      if (info.kind != group_kind::gather) continue;
      const node& n = P::nodes[std::size_t(info.root)];
      const int r = P::plan.storage_root(n.in[1]);
      if (P::plan.storage[std::size_t(r)] != storage_kind::feed) continue;
      const int axis = gather_attrs::of(n).axis;
      a[k++] = {g, P::plan.storage_ref[std::size_t(r)], n.in[1], n.in[0], P::nodes[std::size_t(n.in[0])].out.dim[axis]};
    }
    return a;
  }();
};

// Whether group g is a gather whose indices bind_feeds' caller checks with check_feed_indices.
template <class P> constexpr bool gather_indices_are_fed(int g) {
  for (const fed_gather& f : fed_gathers<P>::list)
    if (f.group == g) return true;
  return false;
}

// Whether group g is a gather whose indices are an argmax over an axis no longer than the
// gather's (directly or through aliases): in range by construction, so it cannot fault (Double
// DQN's target network valued at the online network's greedy action).
template <class P> constexpr bool gather_indices_are_argmax(int g) {
  const node& n = P::nodes[std::size_t(P::plan.groups[std::size_t(g)].root)];
  const node& indices = P::nodes[std::size_t(P::plan.storage_root(n.in[1]))];
  if (indices.kind != op::argmax) return false;
  const std::int64_t choices = P::nodes[std::size_t(indices.in[0])].out.dim[reduce_attrs::of(indices).first];
  const std::int64_t axis_size = P::nodes[std::size_t(n.in[0])].out.dim[gather_attrs::of(n).axis];
  return choices != batch && axis_size != batch && choices <= axis_size;
}

template <class I> std::int64_t first_out_of_range(const I* idx, std::int64_t n, std::int64_t axis_size) {
  for (std::int64_t i = 0; i < n; ++i)
    if (std::int64_t(idx[i]) < 0 || std::int64_t(idx[i]) >= axis_size) return i;
  return -1;
}

// Checks every gather index that comes from a host feed, before any group runs: a bad label
// then fails the run before a batch-norm or optimizer assign scheduled ahead of the gather has
// changed a variable, and the message names the feed and the position of the bad index.
template <class P> void check_feed_indices(const bound_feeds<P>& bound) {
  for (const fed_gather& f : fed_gathers<P>::list) {
    const node& indices = P::nodes[std::size_t(f.indices_node)];
    const node& feed_node = P::nodes[std::size_t(P::plan.feeds[std::size_t(f.feed_slot)])];
    const std::int64_t n = indices.out.elements(bound.batch_size);
    const void* data = bound.data[std::size_t(f.feed_slot)];
    std::int64_t bad = -1, value = 0;
    auto scan = [&](auto* typed) {
      bad = first_out_of_range(typed, n, f.axis_size);
      if (bad >= 0) value = std::int64_t(typed[bad]);
    };
    switch (indices.type) {
      case dtype::i32: scan(static_cast<const std::int32_t*>(data)); break;
      case dtype::i64: scan(static_cast<const std::int64_t*>(data)); break;
      case dtype::u8: scan(static_cast<const std::uint8_t*>(data)); break;
      default: continue;  // not an index type the gather kernels read; the kernel reports it
    }
    if (bad >= 0) {
      const node& params = P::nodes[std::size_t(f.params_node)];
      throw error("kiln: feed '" + std::string(feed_node.name.view()) + "' element " + std::to_string(bad) + ": gather: index " + std::to_string(value) +
                  " is out of range [0, " + std::to_string(f.axis_size) + ") for params " + std::string(to_text(params.out).view()) +
                  (params.name.empty() ? "" : " ('" + std::string(params.name.view()) + "')") + "; the run changed no variable");
    }
  }
}

// ---- rollback of assigns ahead of a computed-index gather --------------------------------------

// The variables whose assign is scheduled before a gather that can still fault during the run
// (one whose indices are computed in the graph, other than an argmax; with FedIndicesChecked =
// false also one whose indices are fed, for CUDA's run_device, whose feeds stay on the device):
// the executor saves them before the schedule and restores them if the run faults. Empty for the
// common graphs (indices fed or an argmax, or assigns after every gather), which then pay
// nothing. The set for FedIndicesChecked = true is a prefix of the one for false.
template <class P, bool FedIndicesChecked = true> struct rollback_set {
  static constexpr int last_unchecked_gather_position = [] {
    int last = -1;
    for (int pos = 0; pos < P::plan.n_groups; ++pos) {
      const int g = P::plan.schedule[std::size_t(pos)];
      if (P::plan.groups[std::size_t(g)].kind == group_kind::gather && !(FedIndicesChecked && gather_indices_are_fed<P>(g)) &&
          !gather_indices_are_argmax<P>(g))
        last = pos;
    }
    return last;
  }();
  static constexpr int count = [] {
    int c = 0;
    for (int pos = 0; pos < last_unchecked_gather_position; ++pos)
      c += P::plan.groups[std::size_t(P::plan.schedule[std::size_t(pos)])].kind == group_kind::assign;
    return c;
  }();
  // node ids of the variables
  static constexpr std::array<int, std::size_t(count)> variables = [] {
    std::array<int, std::size_t(count)> a{};
    std::size_t k = 0;
    for (int pos = 0; pos < last_unchecked_gather_position; ++pos) {
      const group_info& info = P::plan.groups[std::size_t(P::plan.schedule[std::size_t(pos)])];
      if (info.kind == group_kind::assign) a[k++] = P::nodes[std::size_t(info.root)].in[0];
    }
    return a;
  }();
};

// ---- storage and outputs --------------------------------------------------------------------------

// Bytes of node `id`'s value at a batch size.
template <class P> std::size_t value_bytes(int id, std::int64_t batch_size) {
  const node& n = P::nodes[std::size_t(id)];
  return std::size_t(n.out.elements(batch_size)) * size_of(n.type);
}

// (alias, the node whose storage it shares) for every alias node, found at compile time: a run
// would otherwise scan every node of the graph for the few that are aliases.
template <class P> struct alias_table {
  static constexpr int count = [] {
    int c = 0;
    for (std::size_t i = 0; i < P::N; ++i) c += P::plan.storage[i] == storage_kind::alias;
    return c;
  }();
  static constexpr std::array<std::pair<int, int>, std::size_t(count)> pairs = [] {
    std::array<std::pair<int, int>, std::size_t(count)> a{};
    std::size_t k = 0;
    for (std::size_t i = 0; i < P::N; ++i)
      if (P::plan.storage[i] == storage_kind::alias) a[k++] = {int(i), P::plan.storage_root(int(i))};
    return a;
  }();
};

template <class P> void resolve_aliases(void** values) {
  for (const auto& [alias, root] : alias_table<P>::pairs) values[std::size_t(alias)] = values[std::size_t(root)];
}

template <class P> void name_outputs(run_outputs<P::NO>& outputs) {
  for (std::size_t i = 0; i < P::NO; ++i) outputs.names[i] = P::outputs[i].name.view();
}

// Points output i at where(i, node id), with its dtype and dims at this batch size.
template <class P, class Where> void set_outputs(run_outputs<P::NO>& outputs, std::int64_t batch_size, Where&& where) {
  for (std::size_t i = 0; i < P::NO; ++i) {
    const int id = P::outputs[i].node;
    const node& n = P::nodes[std::size_t(id)];
    outputs.values[i] = value_ref{where(i, id), n.type, dims::of(n.out, batch_size)};
  }
}

// The variables the plan assigns (their device copy, where there is one, changes in a run).
template <class P> constexpr bool assigns_variable(int variable_node) {
  for (int g = 0; g < P::plan.n_groups; ++g) {
    const group_info& info = P::plan.groups[std::size_t(g)];
    if (info.kind == group_kind::assign && P::nodes[std::size_t(info.root)].in[0] == variable_node) return true;
  }
  return false;
}

}  // namespace kiln
