// Batch tiling of convolutional chains. A run of consecutive groups in the schedule whose every
// group works sample by sample (image ops, products of a batch-leading a with a static b and
// their epilogues, elementwise loops over batch-leading values) is a segment: instead of each
// group passing over the whole batch in turn, the segment's groups run a few samples at a time,
// one after another, so that what one group writes the next reads from L2 rather than memory.
//
// The seed CNN's conv 1 writes a 93 KB activation per image, 6 MB per batch of 64: past the L2 of
// either core, so the pool read it back from memory. Tiled, each tile's activation is read while
// it is still in cache.
//
// Results are bit for bit those of the untiled schedule: every group in a segment computes each
// sample from the same sample of its inputs, in the same order within the sample. The tiles run
// in parallel; the tile size depends only on the shapes, never on the threads.
//
// Memory: the arena gives a buffer back once its last reader has run, and the next group may
// write into it. Interleaving groups tile by tile would break that, so a segment is cut wherever a
// group writes a buffer that another group of the segment reads or writes for a different value
// (storage_conflict); an elementwise loop writing over its own input of the same shape is fine.
//
// Optimizer updates run the same way over elements: consecutive assigns to variables of one shape
// (Adam's m, v and w of a layer) go chunk by chunk, each chunk through all of them, so that w's
// update reads the new m and v from L1 instead of from another pass over memory.
#pragma once
#include <array>
#include <cstdint>
#include <utility>
#include "fused.hpp"
#include "matmul.hpp"
#include "parallel.hpp"
#include "window.hpp"

namespace kiln::cpu_detail {

// A tile's values (every group's output for its samples) fit in this many bytes where they can:
// half a Zen 3 L2 (512 KiB), a quarter of a Zen 5's.
inline constexpr std::int64_t segment_tile_bytes = 256 << 10;
// Elements per chunk of interleaved assigns: 8 KiB of each array, a few arrays in L1. Variables
// of fewer than two chunks run as before (nothing to gain).
inline constexpr std::int64_t assign_chunk = 2048;

constexpr bool batch_leading_only(const shape& s) {
  if (s.rank < 1 || s.dim[0] != batch) return false;
  for (int d = 1; d < s.rank; ++d)
    if (s.dim[d] == batch) return false;
  return true;
}

// Group G run on samples [b0, b1) of the batch, where it splits that way (ok).
template <class P, int G> struct sample_kernel {
  static constexpr group_info g = P::plan.groups[std::size_t(G)];
  static constexpr const node& root = P::nodes[std::size_t(g.root)];
  static constexpr bool product = g.kind == group_kind::matmul || (g.kind == group_kind::elementwise && g.anchor >= 0);
  static constexpr bool ok = [] {
    if constexpr (g.kind == group_kind::window) return batch_leading_only(root.out);
    else if constexpr (product) return matmul_group<P, G>::per_sample && batch_leading_only(root.out);
    else if constexpr (g.kind == group_kind::elementwise) return batch_leading_only(root.out);
    else return false;
  }();
  static constexpr std::int64_t sample_elements = root.out.static_elements();  // (the batch dim counts 1)
  static constexpr std::int64_t sample_bytes = sample_elements * std::int64_t(size_of(root.type));

  static void run(const context& ctx, std::int64_t b0, std::int64_t b1) {
    if constexpr (g.kind == group_kind::window) window_group<P, G>::run_samples(ctx, b0, b1);
    else if constexpr (product) matmul_group<P, G>::run_samples(ctx, b0, b1);
    else {
      using loop = fused_expr<P, G, g.root, g.root>;
      auto* out = static_cast<typename loop::out_t*>(ctx.values[g.root]);
      loop::run(ctx, out + b0 * sample_elements, b0 * sample_elements, b1 * sample_elements);
    }
  }
};

// Assign group G over elements [b, e) of its variable.
template <class P, int G> struct assign_kernel {
  static constexpr const node& a = P::nodes[std::size_t(P::plan.groups[std::size_t(G)].root)];
  using loop = fused_expr<P, G, a.in[1], P::plan.groups[std::size_t(G)].root>;
  static void run(const context& ctx, std::int64_t b, std::int64_t e) {
    loop::run(ctx, static_cast<typename loop::out_t*>(ctx.values[a.in[0]]) + b, b, e);
  }
};

template <class P> struct batch_segments {
  static constexpr int n = P::plan.n_groups;
  static constexpr std::array<bool, std::size_t(n) + 1> splits = []<std::size_t... G>(std::index_sequence<G...>) {
    return std::array<bool, std::size_t(n) + 1>{sample_kernel<P, int(G)>::ok..., false};
  }(std::make_index_sequence<std::size_t(n)>{});
  static constexpr std::array<std::int64_t, std::size_t(n) + 1> sample_bytes = []<std::size_t... G>(std::index_sequence<G...>) {
    return std::array<std::int64_t, std::size_t(n) + 1>{sample_kernel<P, int(G)>::sample_bytes..., 0};
  }(std::make_index_sequence<std::size_t(n)>{});

  // The arena slot holding value v, or -1 (feeds, variables, constants).
  static constexpr int slot_of(int v) {
    const int r = P::plan.storage_root(v);
    return P::plan.storage[std::size_t(r)] == storage_kind::arena ? P::plan.storage_ref[std::size_t(r)] : -1;
  }
  // Calls f(value) for every value group gi reads from memory.
  template <class F> static constexpr void for_each_read(int gi, F&& f) {
    const group_info& g = P::plan.groups[std::size_t(gi)];
    auto inputs_of = [&](int m) {
      const node& nd = P::nodes[std::size_t(m)];
      for (int i = 0; i < nd.n_in; ++i) {
        const int v = nd.in[std::size_t(i)];
        if (!P::plan.reads_inline(v, gi)) f(v);
      }
    };
    for (int m : P::plan.members_of(gi)) inputs_of(m);
    if (g.anchor >= 0) inputs_of(g.anchor);
  }
  // Whether running groups at schedule positions [s0, s1) tile by tile could let one group's
  // write land on what another group of the range reads or writes.
  static constexpr bool storage_conflict(int s0, int s1) {
    for (int s = s0; s < s1; ++s) {
      const int gw = P::plan.schedule[std::size_t(s)];
      const int wrote = P::plan.groups[std::size_t(gw)].root;
      const int slot = slot_of(wrote);
      if (slot < 0) return true;  // an output written outside the arena: keep it simple
      for (int t = s0; t < s1; ++t) {
        const int gr = P::plan.schedule[std::size_t(t)];
        if (t != s && slot_of(P::plan.groups[std::size_t(gr)].root) == slot) return true;
        bool bad = false;
        for_each_read(gr, [&](int v) {
          if (slot_of(v) != slot || P::plan.storage_root(v) == P::plan.storage_root(wrote)) return;
          // an elementwise loop over its own input of the same shape and type, in place
          const node& a = P::nodes[std::size_t(v)];
          const node& b = P::nodes[std::size_t(wrote)];
          const bool in_place = t == s && P::plan.groups[std::size_t(gw)].kind == group_kind::elementwise &&
                                P::plan.groups[std::size_t(gw)].anchor < 0 && a.out == b.out && a.type == b.type;
          if (!in_place) bad = true;
        });
        if (bad) return true;
      }
    }
    return false;
  }

  // The variable shape of the assign at schedule position s, or a rank -1 shape for other groups.
  static constexpr shape assigned_shape(int s) {
    const group_info& g = P::plan.groups[std::size_t(P::plan.schedule[std::size_t(s)])];
    if (g.kind != group_kind::assign) {
      shape none;
      none.rank = -1;
      return none;
    }
    return P::nodes[std::size_t(P::nodes[std::size_t(g.root)].in[0])].out;
  }
  // Whether the assigns at [s0, s1), all to variables of shape S, can run chunk by chunk: what one
  // of them writes (its variable) another may read only element for element (same shape), never
  // broadcast; they write no arena buffer.
  static constexpr bool assigns_interleave(int s0, int s1) {
    const shape S = assigned_shape(s0);
    for (int s = s0; s < s1; ++s) {
      if (!(assigned_shape(s) == S)) return false;
      for (int t = s0; t < s1; ++t) {
        const int gr = P::plan.schedule[std::size_t(t)];
        const int var = P::nodes[std::size_t(P::plan.groups[std::size_t(P::plan.schedule[std::size_t(s)])].root)].in[0];
        bool bad = false;
        for_each_read(gr, [&](int v) {
          if (P::plan.storage_root(v) == var && !(P::nodes[std::size_t(v)].out == S)) bad = true;
        });
        if (bad) return false;
      }
    }
    return true;
  }

  struct table {
    std::array<int, std::size_t(n) + 1> end{};  // at a segment's first position: one past its last; else -1
    std::array<bool, std::size_t(n) + 1> inside{};
    std::array<bool, std::size_t(n) + 1> over_elements{};  // at a segment's first position: assigns, chunked by element
    std::array<std::int64_t, std::size_t(n) + 1> tile{};   // samples per tile, or elements per chunk
  };
  static constexpr table segments = [] {
    table t;
    t.end.fill(-1);
    int s = 0;
    while (s < n) {
      if (const shape S = assigned_shape(s); S.rank >= 0) {
        int e = s + 1;
        while (e < n && assigns_interleave(s, e + 1)) ++e;
        if (e - s >= 2 && S.static_elements() >= 2 * assign_chunk) {
          t.end[std::size_t(s)] = e;
          t.over_elements[std::size_t(s)] = true;
          t.tile[std::size_t(s)] = assign_chunk;
          for (int q = s + 1; q < e; ++q) t.inside[std::size_t(q)] = true;
        }
        s = e;
        continue;
      }
      int e = s;
      while (e < n && splits[std::size_t(P::plan.schedule[std::size_t(e)])] && !storage_conflict(s, e + 1)) ++e;
      bool has_window = false;
      std::int64_t bytes = 0;
      for (int q = s; q < e; ++q) {
        const int gq = P::plan.schedule[std::size_t(q)];
        has_window = has_window || P::plan.groups[std::size_t(gq)].kind == group_kind::window;
        bytes += sample_bytes[std::size_t(gq)];
      }
      // Only chains with an image op: elsewhere a sample's values are small and the batch already
      // fits in cache (a dense layer), while splitting a product by samples would cost its threads.
      if (e - s >= 2 && has_window) {
        t.end[std::size_t(s)] = e;
        t.tile[std::size_t(s)] = std::max<std::int64_t>(1, segment_tile_bytes / std::max<std::int64_t>(bytes, 1));
        for (int q = s + 1; q < e; ++q) t.inside[std::size_t(q)] = true;
        s = e;
      } else {
        s = std::max(s + 1, e);
      }
    }
    return t;
  }();
  static constexpr int count = [] {
    int c = 0;
    for (int s = 0; s < n; ++s) c += segments.end[std::size_t(s)] >= 0;
    return c;
  }();

  // The groups at schedule positions [S0, S1), tile by tile (or chunk by chunk).
  template <int S0, int S1> static void run(const context& ctx) {
    if constexpr (segments.over_elements[std::size_t(S0)]) {
      constexpr std::int64_t chunk = segments.tile[std::size_t(S0)];
      constexpr std::int64_t elements = assigned_shape(S0).static_elements();
      parallel_range((elements + chunk - 1) / chunk, chunk * 4 * (S1 - S0), [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          const std::int64_t b = c * chunk, e = std::min(elements, b + chunk);
          [&]<int... I>(std::integer_sequence<int, I...>) {
            (assign_kernel<P, P::plan.schedule[std::size_t(S0 + I)]>::run(ctx, b, e), ...);
          }(std::make_integer_sequence<int, S1 - S0>{});
        }
      });
    } else {
      run_samples<S0, S1>(ctx);
    }
  }
  template <int S0, int S1> static void run_samples(const context& ctx) {
    constexpr std::int64_t tile = segments.tile[std::size_t(S0)];
    const std::int64_t samples = ctx.batch;
    const std::int64_t tiles = (samples + tile - 1) / tile;
    constexpr std::int64_t cost = [] {
      std::int64_t c = 0;
      for (int s = S0; s < S1; ++s) c += sample_bytes[std::size_t(P::plan.schedule[std::size_t(s)])];
      return c * tile;
    }();
    parallel_range(tiles, cost, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t) {
        const std::int64_t b0 = t * tile, b1 = std::min(samples, b0 + tile);
        [&]<int... I>(std::integer_sequence<int, I...>) {
          (sample_kernel<P, P::plan.schedule[std::size_t(S0 + I)]>::run(ctx, b0, b1), ...);
        }(std::make_integer_sequence<int, S1 - S0>{});
      }
    });
  }
};

}  // namespace kiln::cpu_detail
