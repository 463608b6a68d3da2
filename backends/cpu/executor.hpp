// The CPU executor: binds feeds, owns the arena (allocated on the first run for a batch size
// and reused after), and runs the groups of the plan in schedule order as direct calls.
#pragma once
#include <array>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <utility>
#include "../../runtime/binding.hpp"
#include "../../runtime/outputs.hpp"
#include "../../runtime/variables.hpp"
#include "../../runtime/view.hpp"
#include "batch_segments.hpp"
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
    name_outputs<P>(outputs_);
  }

  cpu_executor(const cpu_executor&) = delete;
  cpu_executor& operator=(const cpu_executor&) = delete;

  const run_outputs<P::NO>& run(std::initializer_list<feed> feeds = {}) { return run(std::span<const feed>(feeds.begin(), feeds.size())); }

  const run_outputs<P::NO>& run(std::span<const feed> feeds) {
    const bound_feeds<P> bound = bind_feeds<P>(feeds);
    check_feed_indices<P>(bound);
    for (int i = 0; i < plan.n_feeds; ++i) values_[std::size_t(plan.feeds[std::size_t(i)])] = const_cast<void*>(bound.data[std::size_t(i)]);
    prepare_arena(bound.batch_size, bound.batch_feed);
    resolve_aliases<P>(values_.data());
    const cpu_detail::context ctx{values_.data(), bound.batch_size};
    kernels k{ctx};
    if constexpr (rollback_set<P>::count > 0) {
      // A gather on computed indices can still fault after these assigns ran: save their
      // variables so a failed run leaves the whole store as it was.
      save_rollback();
      try {
        run_all(k);
      } catch (...) {
        restore_rollback();
        throw;
      }
    } else {
      run_all(k);
    }
    set_outputs<P>(outputs_, bound.batch_size, [&](std::size_t, int id) { return values_[std::size_t(id)]; });
    return outputs_;
  }

  // The host store is the only copy of the variables: these are the CUDA executor's
  // synchronization points, here for code written against either backend.
  variables& vars() { return *store_; }
  template <scalar_type T> tensor_view<T> variable(std::string_view name) { return store_->get<T>(name); }
  void pull_variables() {}
  void push_variables() {}
  void mark_host_written(std::string_view) {}
  // Tiled segments (batch_segments.hpp: convolutional chains a few samples at a time, a layer's
  // optimizer updates chunk by chunk), on by default. Off, every group passes over all its data
  // in turn; the results are the same bit for bit (tests compare).
  void set_tiling(bool on) { tiling_ = on; }
  static constexpr int tiled_segment_count() { return cpu_detail::batch_segments<P>::count; }
  std::int64_t arena_allocations() const { return arena_allocations_; }
  std::size_t arena_bytes() const { return arena_.size(); }

  static constexpr std::uint64_t graph_seed = P::seed;  // graph::seed: variables without a seed of their own draw from it

  // Bytes of the variables a failing run restores (rollback_set; 0 for most graphs).
  std::size_t rollback_bytes() const { return rollback_.size(); }

  // The CPU's kernel for each group kind (the walk over the plan is runtime/binding.hpp's).
  struct kernels {
    static constexpr std::string_view backend_name = "cpu";
    const cpu_detail::context& ctx;

    template <int G> void run(group_tag<group_kind::elementwise>, group_index<G>) const {
      constexpr group_info g = plan.groups[std::size_t(G)];
      if constexpr (g.anchor >= 0) cpu_detail::matmul_group<P, G>::run(ctx);
      else {
        using loop = cpu_detail::fused_expr<P, G, g.root, g.root>;
        loop::run_all(ctx, static_cast<typename loop::out_t*>(ctx.values[g.root]));
      }
    }
    template <int G> void run(group_tag<group_kind::reduction>, group_index<G>) const { cpu_detail::reduction<P, G>::run(ctx); }
    template <int G> void run(group_tag<group_kind::matmul>, group_index<G>) const { cpu_detail::matmul_group<P, G>::run(ctx); }
    template <int G> void run(group_tag<group_kind::layout>, group_index<G>) const { cpu_detail::layout_group<P, G>::run(ctx); }
    // Throws on an out-of-range index before any later group (assigns included) runs.
    template <int G> void run(group_tag<group_kind::gather>, group_index<G>) const { cpu_detail::gather_group<P, G>::run(ctx); }
    template <int G> void run(group_tag<group_kind::window>, group_index<G>) const { cpu_detail::window_group<P, G>::run(ctx); }
    // The value expression, broadcast to the variable's shape, written into it.
    template <int G> void run(group_tag<group_kind::assign>, group_index<G>) const {
      constexpr const node& a = nodes[std::size_t(plan.groups[std::size_t(G)].root)];
      using loop = cpu_detail::fused_expr<P, G, a.in[1], plan.groups[std::size_t(G)].root>;
      loop::run_all(ctx, static_cast<typename loop::out_t*>(ctx.values[a.in[0]]));
    }
  };

 private:
  // The schedule, with the tiled segments (batch_segments.hpp) run tile by tile: a segment's
  // first position runs the whole segment, its other positions nothing.
  using segments = cpu_detail::batch_segments<P>;
  template <std::size_t S> void run_position(kernels& k) {
    if constexpr (segments::segments.end[S] >= 0) {
      if (tiling_) segments::template run<int(S), segments::segments.end[S]>(k.ctx);
      else run_group<P, plan.schedule[S]>(k);
    } else if constexpr (segments::segments.inside[S]) {
      if (!tiling_) run_group<P, plan.schedule[S]>(k);
    } else {
      run_group<P, plan.schedule[S]>(k);
    }
  }
  void run_all(kernels& k) {
#ifdef KILN_PROFILE
    profile_schedule(k, std::make_index_sequence<std::size_t(plan.n_groups)>{});
#else
    if constexpr (segments::count == 0) run_schedule<P>(k);
    else [&]<std::size_t... S>(std::index_sequence<S...>) { (run_position<S>(k), ...); }(std::make_index_sequence<std::size_t(plan.n_groups)>{});
#endif
  }

  // Copies of the rollback_set variables, one after another at aligned offsets in rollback_
  // (allocated on the first run, as the arena is).
  void save_rollback() {
    if (!rollback_.size()) {
      std::size_t bytes = 0;
      for (int v : rollback_set<P>::variables) bytes += std::size_t(align_bytes(std::int64_t(value_bytes<P>(v, 1))));
      rollback_.reset(bytes);
    }
    std::size_t off = 0;
    for (int v : rollback_set<P>::variables) {
      const std::size_t bytes = value_bytes<P>(v, 1);
      std::memcpy(rollback_.data() + off, values_[std::size_t(v)], bytes);
      off += std::size_t(align_bytes(std::int64_t(bytes)));
    }
  }
  void restore_rollback() {
    std::size_t off = 0;
    for (int v : rollback_set<P>::variables) {
      const std::size_t bytes = value_bytes<P>(v, 1);
      std::memcpy(values_[std::size_t(v)], rollback_.data() + off, bytes);
      off += std::size_t(align_bytes(std::int64_t(bytes)));
    }
  }

  // bind_feeds has bounded batch_size (max_batch_size), so these sums cannot overflow; an
  // allocation that fails is reported as a kiln::error naming the batch and its feed.
  void prepare_arena(std::int64_t batch_size, std::string_view batch_feed) {
    if (batch_size == arena_batch_) return;
    std::array<std::int64_t, N + 1> slot_bytes{};
    std::int64_t bytes = 0;  // plan.arena_bytes(batch_size), plus padding to place large buffers
    for (int s = 0; s < plan.n_slots; ++s) {
      slot_bytes[std::size_t(s)] = align_bytes(plan.slots[std::size_t(s)].fixed + plan.slots[std::size_t(s)].per_batch * batch_size);
      bytes += slot_bytes[std::size_t(s)] + cpu_detail::buffer_padding(slot_bytes[std::size_t(s)]);
    }
    if (std::size_t(bytes) > arena_.size()) {
      // Allocate, then swap: when the allocation fails the old arena (and every pointer into it)
      // stays valid, so a retry at the previous batch size still works.
      aligned_buffer grown;
      try {
        grown.reset(std::size_t(bytes));
      } catch (const std::bad_alloc&) {
        throw error("kiln: cannot allocate " + std::to_string(bytes) + " bytes of working memory for batch size " + std::to_string(batch_size) +
                    (batch_feed.empty() ? std::string() : " (feed '" + std::string(batch_feed) + "')"));
      }
      arena_ = std::move(grown);
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

#ifdef KILN_PROFILE
 public:
  // Seconds spent in each schedule position since construction (a build with -DKILN_PROFILE).
  std::array<double, std::size_t(plan.n_groups) + 1> group_seconds{};

 private:
  template <std::size_t... S> void profile_schedule(kernels& k, std::index_sequence<S...>) { (profiled<S>(k), ...); }
  // CPU time of the calling thread: robust against other processes on a busy machine (profile
  // with one thread, e.g. oneTBB's global_control, to see the whole cost of a group).
  template <std::size_t S> void profiled(kernels& k) {
    timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    run_position<S>(k);  // a segment's time counts at its first position
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    group_seconds[S] += double(t1.tv_sec - t0.tv_sec) + 1e-9 * double(t1.tv_nsec - t0.tv_nsec);
  }
#endif

  variables* store_ = nullptr;
  std::unique_ptr<variables> owned_store_;
  std::array<void*, N + 1> values_{};
  aligned_buffer constants_;
  aligned_buffer arena_;
  aligned_buffer rollback_;
  std::int64_t arena_batch_ = -1;
  bool tiling_ = true;
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
