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
// Gather faults: a run that meets an out-of-range gather index throws, and no group scheduled
// after the faulting gather changes a variable (the CPU throws from the gather itself; the CUDA
// backend's assign kernels test the device fault flag before they write). Groups scheduled
// before it have run on both backends.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include "../graph/program.hpp"
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
};

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
        if (f.value.shape.d[d] < 0) throw mismatch();
        if (batch_size >= 0 && f.value.shape.d[d] != batch_size)
          throw error("kiln: placeholder '" + std::string(f.name) + "' has batch " + std::to_string(f.value.shape.d[d]) + " but '" +
                      std::string(batch_from) + "' has batch " + std::to_string(batch_size));
        batch_size = f.value.shape.d[d];
        batch_from = n.name.text;
      } else if (f.value.shape.d[d] != n.out.dim[d]) {
        throw mismatch();
      }
    }
    if (!f.value.data && f.value.shape.elements() > 0) throw error("kiln: feed '" + std::string(f.name) + "' has no data");
    bound[std::size_t(slot)] = true;
    out.data[std::size_t(slot)] = f.value.data;
  }
  for (int i = 0; i < plan.n_feeds; ++i)
    if (!bound[std::size_t(i)]) {
      const node& n = P::nodes[std::size_t(plan.feeds[std::size_t(i)])];
      throw error("kiln: missing feed for placeholder '" + std::string(n.name.view()) + "' (" + std::string(name_of(n.type)) + " " +
                  to_string(n.out) + ")");
    }
  out.batch_size = batch_size < 0 ? 1 : batch_size;
  return out;
}

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
