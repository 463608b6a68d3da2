// The CPU executor: binds feeds, owns the arena (allocated on the first run for a batch size
// and reused after), and runs the groups of the plan in schedule order as direct calls.
#pragma once
#include <array>
#include <ctime>
#include <string>
#include <utility>
#include "../../runtime/outputs.hpp"
#include "../../runtime/variables.hpp"
#include "../../runtime/view.hpp"
#include "fused.hpp"
#include "layout.hpp"
#include "matmul.hpp"
#include "reduce.hpp"
#include "window.hpp"

namespace kiln {

struct cpu {};

template <class P> class cpu_executor {
 public:
  using program_type = P;
  static constexpr const auto& plan = P::plan;
  static constexpr const auto& nodes = P::nodes;
  static constexpr std::size_t N = P::N;

  explicit cpu_executor(variables* shared_store = nullptr) : store_(shared_store) {
    if (!store_) {
      owned_store_ = std::make_unique<variables>();
      store_ = owned_store_.get();
    }
    for (int v = 0; v < plan.n_variables; ++v) {
      const int n = plan.variables[std::size_t(v)];
      values_[std::size_t(n)] = store_->bind(nodes[std::size_t(n)], std::span<const double>(P::pool.data(), P::pool.size()), graph_seed);
    }
    std::size_t bytes = 0;
    for (int c = 0; c < plan.n_constants; ++c) {
      const node& n = nodes[std::size_t(plan.constants[std::size_t(c)])];
      bytes += std::size_t(align_bytes(n.out.static_elements() * std::int64_t(size_of(n.type))));
    }
    constants_.reset(bytes);
    std::size_t off = 0;
    for (int c = 0; c < plan.n_constants; ++c) {
      const int id = plan.constants[std::size_t(c)];
      const node& n = nodes[std::size_t(id)];
      std::byte* dst = constants_.data() + off;
      detail::with_ctype(n.type, [&](auto zero) {
        using T = decltype(zero);
        for (std::int64_t i = 0; i < n.out.static_elements(); ++i) reinterpret_cast<T*>(dst)[i] = static_cast<T>(P::pool[std::size_t(constant_attrs::of(n).pool_offset + i)]);
      });
      values_[std::size_t(id)] = dst;
      off += std::size_t(align_bytes(n.out.static_elements() * std::int64_t(size_of(n.type))));
    }
    for (std::size_t i = 0; i < P::NO; ++i) outputs_.names[i] = P::outputs[i].name.view();
  }

  cpu_executor(const cpu_executor&) = delete;
  cpu_executor& operator=(const cpu_executor&) = delete;

  const run_outputs<P::NO>& run(std::initializer_list<feed> feeds = {}) { return run(std::span<const feed>(feeds.begin(), feeds.size())); }

  const run_outputs<P::NO>& run(std::span<const feed> feeds) {
    const std::int64_t batch_size = bind_feeds(feeds);
    prepare_arena(batch_size);
    resolve_aliases();
    const cpu_detail::context ctx{values_.data(), batch_size};
    run_schedule(ctx, std::make_index_sequence<std::size_t(plan.n_groups)>{});
    for (std::size_t i = 0; i < P::NO; ++i) {
      const node& n = nodes[std::size_t(P::outputs[i].node)];
      outputs_.values[i] = value_ref{values_[std::size_t(P::outputs[i].node)], n.type, dims::of(n.out, batch_size)};
    }
    return outputs_;
  }

  variables& vars() { return *store_; }
  template <scalar_type T> tensor_view<T> variable(std::string_view name) { return store_->get<T>(name); }
  std::int64_t arena_allocations() const { return arena_allocations_; }
  std::size_t arena_bytes() const { return arena_.size(); }

  static constexpr std::uint64_t graph_seed = P::seed;  // graph::seed: variables without a seed of their own draw from it

 private:
  std::int64_t bind_feeds(std::span<const feed> feeds) {
    std::array<bool, std::size_t(plan.n_feeds) + 1> bound{};
    std::int64_t batch_size = -1;
    const char* batch_from = nullptr;
    for (const feed& f : feeds) {
      int slot = -1;
      for (int i = 0; i < plan.n_feeds && slot < 0; ++i)
        if (nodes[std::size_t(plan.feeds[std::size_t(i)])].name.view() == f.name) slot = i;
      if (slot < 0) {
        if (declared_placeholder(f.name)) continue;  // declared, but no output needs it
        throw error("kiln: feed '" + std::string(f.name) + "' matches no placeholder; placeholders are: " + placeholder_list());
      }
      const node& n = nodes[std::size_t(plan.feeds[std::size_t(slot)])];
      auto mismatch = [&] {  // messages are built only on failure: the hot path must not allocate
        return error("kiln: placeholder '" + std::string(f.name) + "' expects " + std::string(name_of(n.type)) + " " +
                     to_string(n.out) + ", got " + std::string(name_of(f.value.type)) + " " + to_string(f.value.shape));
      };
      if (f.value.type != n.type || f.value.shape.rank != n.out.rank) throw mismatch();
      for (int d = 0; d < n.out.rank; ++d) {
        if (n.out.dim[d] == batch) {
          if (batch_size >= 0 && f.value.shape.d[d] != batch_size)
            throw error("kiln: placeholder '" + std::string(f.name) + "' has batch " + std::to_string(f.value.shape.d[d]) +
                        " but '" + std::string(batch_from) + "' has batch " + std::to_string(batch_size));
          batch_size = f.value.shape.d[d];
          batch_from = n.name.text;
        } else if (f.value.shape.d[d] != n.out.dim[d]) {
          throw mismatch();
        }
      }
      if (!f.value.data && f.value.shape.elements() > 0) throw error("kiln: feed '" + std::string(f.name) + "' has no data");
      bound[std::size_t(slot)] = true;
      values_[std::size_t(plan.feeds[std::size_t(slot)])] = const_cast<void*>(f.value.data);
    }
    for (int i = 0; i < plan.n_feeds; ++i)
      if (!bound[std::size_t(i)]) {
        const node& n = nodes[std::size_t(plan.feeds[std::size_t(i)])];
        throw error("kiln: missing feed for placeholder '" + std::string(n.name.view()) + "' (" + std::string(name_of(n.type)) + " " + to_string(n.out) + ")");
      }
    return batch_size < 0 ? 1 : batch_size;
  }

  static bool declared_placeholder(std::string_view name) {
    for (const node& n : P::model_nodes)  // placeholders lowering dropped as unused included
      if (n.kind == op::placeholder && n.name.view() == name) return true;
    return false;
  }
  static std::string placeholder_list() {
    std::string s;
    for (const node& n : P::model_nodes)
      if (n.kind == op::placeholder && n.name.view().substr(0, 1) != "~") s += (s.empty() ? "" : ", ") + std::string(n.name.view());
    return s.empty() ? "(none)" : s;
  }

  void prepare_arena(std::int64_t batch_size) {
    if (batch_size == arena_batch_) return;
    std::array<std::int64_t, N + 1> slot_bytes{};
    std::int64_t bytes = 0;  // plan.arena_bytes(batch_size), plus padding to place large buffers
    for (int s = 0; s < plan.n_slots; ++s) {
      slot_bytes[std::size_t(s)] = align_bytes(plan.slots[std::size_t(s)].fixed + plan.slots[std::size_t(s)].per_batch * batch_size);
      bytes += slot_bytes[std::size_t(s)] + cpu_detail::buffer_padding(slot_bytes[std::size_t(s)]);
    }
    if (std::size_t(bytes) > arena_.size()) {
      arena_.reset(std::size_t(bytes));
      ++arena_allocations_;
    }
    std::array<std::int64_t, N + 1> slot_offset{};
    std::int64_t off = 0;
    for (int s = 0; s < plan.n_slots; ++s) {
      off = cpu_detail::place_buffer(arena_.data(), off, slot_bytes[std::size_t(s)]);
      slot_offset[std::size_t(s)] = off;
      off += slot_bytes[std::size_t(s)];
    }
    for (std::size_t i = 0; i < N; ++i)
      if (plan.storage[i] == storage_kind::arena) values_[i] = arena_.data() + slot_offset[std::size_t(plan.storage_ref[i])];
    arena_batch_ = batch_size;
  }

  // (alias, the node whose storage it shares) for every alias node, found at compile time: a run
  // would otherwise scan every node of the graph for the few that are aliases.
  static constexpr int n_aliases = [] {
    int count = 0;
    for (std::size_t i = 0; i < N; ++i) count += plan.storage[i] == storage_kind::alias;
    return count;
  }();
  static constexpr std::array<std::pair<int, int>, std::size_t(n_aliases)> aliases = [] {
    std::array<std::pair<int, int>, std::size_t(n_aliases)> a{};
    std::size_t k = 0;
    for (std::size_t i = 0; i < N; ++i)
      if (plan.storage[i] == storage_kind::alias) a[k++] = {int(i), plan.storage_root(int(i))};
    return a;
  }();

  void resolve_aliases() {
    for (const auto& [alias, root] : aliases) values_[std::size_t(alias)] = values_[std::size_t(root)];
  }

  template <std::size_t... S> void run_schedule(const cpu_detail::context& ctx, std::index_sequence<S...>) {
#ifdef KILN_PROFILE
    (profiled<S>(ctx), ...);
#else
    (run_group<plan.schedule[S]>(ctx), ...);
#endif
  }

#ifdef KILN_PROFILE
 public:
  // Seconds spent in each schedule position since construction (a build with -DKILN_PROFILE).
  std::array<double, std::size_t(plan.n_groups) + 1> group_seconds{};

 private:
  // CPU time of the calling thread: robust against other processes on a busy machine (profile
  // with one thread, e.g. oneTBB's global_control, to see the whole cost of a group).
  template <std::size_t S> void profiled(const cpu_detail::context& ctx) {
    timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    run_group<plan.schedule[S]>(ctx);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    group_seconds[S] += double(t1.tv_sec - t0.tv_sec) + 1e-9 * double(t1.tv_nsec - t0.tv_nsec);
  }
#endif

  template <int G> static void run_group(const cpu_detail::context& ctx) {
    constexpr group_info g = plan.groups[std::size_t(G)];
    if constexpr (g.kind == group_kind::elementwise) {
      if constexpr (g.anchor >= 0) cpu_detail::matmul_group<P, G>::run(ctx);
      else {
        using loop = cpu_detail::fused_expr<P, G, g.root, g.root>;
        loop::run_all(ctx, static_cast<typename loop::out_t*>(ctx.values[g.root]));
      }
    } else if constexpr (g.kind == group_kind::reduction) {
      cpu_detail::reduction<P, G>::run(ctx);
    } else if constexpr (g.kind == group_kind::matmul) {
      cpu_detail::matmul_group<P, G>::run(ctx);
    } else if constexpr (g.kind == group_kind::layout) {
      cpu_detail::layout_group<P, G>::run(ctx);
    } else if constexpr (g.kind == group_kind::gather) {
      cpu_detail::gather_group<P, G>::run(ctx);
    } else if constexpr (g.kind == group_kind::window) {
      cpu_detail::window_group<P, G>::run(ctx);
    } else {
      static_assert(g.kind == group_kind::assign, "cpu: a group kind without a kernel");
      constexpr const node& a = nodes[std::size_t(g.root)];
      using loop = cpu_detail::fused_expr<P, G, a.in[1], g.root>;
      loop::run_all(ctx, static_cast<typename loop::out_t*>(ctx.values[a.in[0]]));
    }
  }

  variables* store_ = nullptr;
  std::unique_ptr<variables> owned_store_;
  std::array<void*, N + 1> values_{};
  aligned_buffer constants_;
  aligned_buffer arena_;
  std::int64_t arena_batch_ = -1;
  std::int64_t arena_allocations_ = 0;
  run_outputs<P::NO> outputs_{};
};

// compile<cpu>(model): everything that can be decided at compile time already has been; this
// creates (or binds) the variables and returns the executor.
template <class Backend, model M>
  requires std::same_as<Backend, cpu>
auto compile(M, variables* store = nullptr) {
  static_assert(program<M>::ok);
  return cpu_executor<program<M>>(store);
}

}  // namespace kiln
