// Debugging a NaN: which op produced the first non-finite value (TensorFlow's check_numerics,
// asked after the fact instead of compiled into every step).
//
//   try { fit(train, pipe, {..., .callbacks = {&stop_on_nan}}); }
//   catch (const callbacks::non_finite_error&) {
//     if (auto origin = first_non_finite<train_step>(feeds_of_the_failing_batch, train.vars()))
//       std::puts(origin->message.c_str());   // "op 'log' at model.cpp:42 (f32 [batch,3]) produced NaN ..."
//   }
//
// It compiles the graph once more with every floating-point value as an output (no fusion can
// hide an intermediate then), runs the given feeds once over the store's current values, and
// returns the first node, in the order the graph was built (a topological order), whose value
// holds a NaN or an infinity: a placeholder (the input was already bad), a variable (an earlier
// step already spoiled the weights) or the op that turned finite inputs into a non-finite value.
// The store is left exactly as it was (the run's assigns are undone). Compiling a graph with
// every value as an output costs compile time and memory in proportion to the graph: a debug
// tool, not something for the training step.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "../backends/cpu/executor.hpp"
#include "../graph/graph.hpp"
#include "../graph/op_table.hpp"
#include "../graph/program.hpp"
#include "../runtime/error.hpp"
#include "../runtime/variables.hpp"

namespace kiln {

namespace numerics_detail {

inline constexpr std::string_view output_prefix = "kiln_check_numerics/";

constexpr bool is_floating(dtype t) { return t == dtype::f32 || t == dtype::f64; }

}  // namespace numerics_detail

// Graph M with each f32/f64 node also an output named kiln_check_numerics/<node id>.
template <model M> struct every_value_as_output {
  constexpr graph operator()() const {
    graph g = M{}();
    if (!g.ok()) return g;
    const int n = int(g.nodes.size());
    for (int i = 0; i < n; ++i) {
      if (!numerics_detail::is_floating(g.nodes[std::size_t(i)].type)) continue;
      char text[40] = {};
      std::size_t length = 0;
      for (char c : numerics_detail::output_prefix) text[length++] = c;
      char digits[12] = {};
      int d = 0;
      for (int v = i; d == 0 || v > 0; v /= 10) digits[d++] = char('0' + v % 10);
      while (d > 0) text[length++] = digits[--d];
      g.output(std::string_view(text, length), tensor{&g, i});
    }
    return g;
  }
};

struct non_finite_origin {
  int node = -1;          // index in the model graph (creation order)
  std::string op;         // the op's name ("log", "placeholder", "variable", ...)
  std::string name;       // the node's own name (placeholders, variables), else empty
  std::string file;       // where the user's code created it
  int line = 0;
  std::int64_t element = 0;  // the first non-finite element of its value
  double value = 0;          // NaN or +-infinity
  std::string message;       // all of the above in one sentence
};

// The first node of M whose value is non-finite for `feeds` over the current values of `store`
// (the store of the executor that met the NaN); nullopt when every value is finite.
template <model M>
std::optional<non_finite_origin> first_non_finite(std::span<const feed> feeds, variables& store) {
  using debug_program = program<every_value_as_output<M>>;
  static_assert(debug_program::ok);
  // The run applies the step's assigns; the store has to look untouched afterwards.
  std::vector<std::vector<std::byte>> saved(store.size());
  for (std::size_t i = 0; i < store.size(); ++i) saved[i].assign(store[i].data.data(), store[i].data.data() + store[i].data.size());
  const std::size_t bound_before = store.size();
  auto restore = [&] {
    for (std::size_t i = 0; i < bound_before && i < store.size(); ++i) std::memcpy(store.find(store[i].name)->data.data(), saved[i].data(), saved[i].size());
  };
  std::optional<non_finite_origin> found;
  try {
    cpu_executor<debug_program> exe(&store);
    const auto& outputs = exe.run(feeds);
    constexpr auto& model_nodes = debug_program::frozen.model_nodes;
    for (std::size_t i = 0; i < model_nodes.size() && !found; ++i) {
      const node& n = model_nodes[i];
      if (!numerics_detail::is_floating(n.type)) continue;
      const value_ref& v = outputs[std::string(numerics_detail::output_prefix) + std::to_string(i)];
      const std::int64_t count = v.shape.elements();
      for (std::int64_t e = 0; e < count && !found; ++e) {
        const double x = v.type == dtype::f32 ? double(static_cast<const float*>(v.data)[e]) : static_cast<const double*>(v.data)[e];
        if (std::isfinite(x)) continue;
        non_finite_origin o;
        o.node = int(i);
        o.op = std::string(name_of(n.kind));
        o.name = std::string(n.name.view());
        o.file = n.file ? n.file : "";
        if (auto slash = o.file.rfind('/'); slash != std::string::npos) o.file = o.file.substr(slash + 1);
        o.line = n.line;
        o.element = e;
        o.value = x;
        o.message = "op '" + o.op + "'" + (o.name.empty() ? "" : " '" + o.name + "'") + " at " + o.file + ":" + std::to_string(o.line) + " (" +
                    std::string(name_of(v.type)) + " " + to_string(v.shape) + ", model node " + std::to_string(i) + ") produced " +
                    (std::isnan(x) ? "NaN" : (x > 0 ? "+infinity" : "-infinity")) + " at element " + std::to_string(e) +
                    "; every value computed before it is finite";
        found = std::move(o);
      }
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return found;
}

template <model M>
std::optional<non_finite_origin> first_non_finite(std::initializer_list<feed> feeds, variables& store) {
  return first_non_finite<M>(std::span<const feed>(feeds.begin(), feeds.size()), store);
}

}  // namespace kiln
