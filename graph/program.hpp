// A program is everything the compiler knows about one model: the graph the model function
// returns (the model view: the ops the user wrote, after differentiation), the graph lowering made
// of it (graph/lower passes: what the planner schedules and kernels run), the constant pool,
// outputs and plan, all `static constexpr`. Backends instantiate kernels from it.
#pragma once
#include <array>
#include <concepts>
#include "../ops/lowering.hpp"
#include "plan.hpp"

namespace kiln {

// A model is a default-constructible callable (e.g. a captureless lambda) returning a graph.
template <class M>
concept model = std::default_initializable<M> && requires(M m) {
  { m() } -> std::same_as<graph>;
};

struct graph_sizes {
  std::size_t model_nodes = 0, nodes = 0, pool = 0, outputs = 0;
};

template <std::size_t NM, std::size_t N, std::size_t NP, std::size_t NO> struct frozen_graph {
  std::array<node, NM> model_nodes{};
  std::array<output_entry, NO> model_outputs{};
  std::array<node, N> nodes{};
  std::array<double, NP> pool{};
  std::array<output_entry, NO> outputs{};
  std::uint64_t seed = 0;
  message_text error{};
};

// Instantiating this type with a non-empty message is how graph errors reach the user: the
// compiler's first line shows the message inside the template argument.
template <message_text Message> struct graph_error {
  static_assert(Message.size == 0, "kiln: the graph is invalid; the reason is the text inside graph_error<...> above");
  static constexpr bool ok = true;
};

template <model M> struct program {
  static constexpr graph_sizes sizes = [] {
    const graph g = M{}();
    if (!g.ok()) return graph_sizes{};
    const graph l = lower(g);
    if (!l.ok()) return graph_sizes{};
    return graph_sizes{g.nodes.size(), l.nodes.size(), l.pool.size(), l.outputs.size()};
  }();
  static constexpr std::size_t NM = sizes.model_nodes, N = sizes.nodes, NP = sizes.pool, NO = sizes.outputs;
  static constexpr frozen_graph<NM, N, NP, NO> frozen = [] {
    const graph g = M{}();
    frozen_graph<NM, N, NP, NO> f;
    f.error = g.error;
    if (!g.ok()) return f;
    const graph l = lower(g);
    f.error = l.error;
    if (!l.ok()) return f;
    for (std::size_t i = 0; i < NM; ++i) f.model_nodes[i] = g.nodes[i];
    for (std::size_t i = 0; i < NO; ++i) f.model_outputs[i] = g.outputs[i];
    for (std::size_t i = 0; i < N; ++i) f.nodes[i] = l.nodes[i];
    for (std::size_t i = 0; i < NP; ++i) f.pool[i] = l.pool[i];
    for (std::size_t i = 0; i < NO; ++i) f.outputs[i] = l.outputs[i];
    f.seed = g.seed;
    return f;
  }();
  static constexpr bool graph_ok = graph_error<frozen.error>::ok;
  // Copies rather than references to `frozen`: nvcc's front end rejects a static constexpr
  // reference member whose initializer depends on a template parameter.
  static constexpr std::array<node, NM> model_nodes = frozen.model_nodes;
  static constexpr std::array<output_entry, NO> model_outputs = frozen.model_outputs;
  static constexpr std::array<node, N> nodes = frozen.nodes;
  static constexpr std::array<double, NP> pool = frozen.pool;
  static constexpr std::array<output_entry, NO> outputs = frozen.outputs;
  // The graph-level seed (graph::seed): variables without a seed of their own draw from it.
  static constexpr std::uint64_t seed = frozen.seed;
  static constexpr kiln::plan<N> plan = make_plan(frozen.nodes, frozen.outputs);
  static constexpr bool plan_ok = graph_error<plan.error>::ok;
  static constexpr bool ok = graph_ok && plan_ok;

  template <std::size_t I> static constexpr const node& at = nodes[I];
};

}  // namespace kiln
