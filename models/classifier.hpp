// The train-step and inference graphs shared by every image classifier of models/: a network is a
// constexpr function net(graph&, images, training) -> logits [batch,10] that creates its variables
// by name, so a train graph and an inference graph built from the same network compile over one
// variable store and see the same weights.
#pragma once
#include "../nn/layers.hpp"
#include "../nn/losses.hpp"
#include "../ops/indexing.hpp"
#include "../ops/reduce.hpp"
#include "../train/minimize.hpp"
#include "../graph/program.hpp"
#include "../runtime/random.hpp"
#include "../runtime/variables.hpp"

namespace kiln::models {

// training = true: batch statistics (and moving-average updates) in batch norms, dropout active.
using network = tensor (*)(graph&, tensor images, bool training);

// The placeholders every classifier graph reads: "images" f32 [batch,H,W,1], "labels" i32 [batch].
constexpr tensor images_placeholder(graph& g, std::int64_t height = 28, std::int64_t width = 28) {
  return g.placeholder("images", dtype::f32, {batch, height, width, 1});
}
constexpr tensor labels_placeholder(graph& g) { return g.placeholder("labels", dtype::i32, {batch}); }

// One Adam step (Keras defaults, as the seeds) on the mean sparse softmax cross-entropy.
// Feeds "images", "labels". Outputs "loss" (the batch mean before the update), "step" (the
// iteration count after it).
template <network Net> struct classifier_train {
  constexpr graph operator()() const {
    graph g;
    const tensor images = images_placeholder(g);
    const tensor labels = labels_placeholder(g);
    const tensor loss = sparse_softmax_cross_entropy(labels, Net(g, images, true));
    g.output("loss", loss);
    g.output("step", minimize(adam{}, loss));
    return g;
  }
};

// Inference (moving statistics, no dropout). Feeds "images". Outputs "logits", "predictions" (i32).
template <network Net> struct classifier_infer {
  constexpr graph operator()() const {
    graph g;
    const tensor logits = Net(g, images_placeholder(g), false);
    g.output("logits", logits);
    g.output("predictions", argmax(logits, -1));
    return g;
  }
};

// Creates the variables of the given graphs in `store`, initialized with a graph seed derived from
// `seed`, before any executor binds them: executors compiled over the store afterwards find them
// there, so one compiled program trains from any run-time seed. The networks of models/ use
// seedless initializers for exactly this; optimizer slots, counters and metric state are zeros or
// constants and do not depend on the seed.
template <model... Models> void seed_variables(variables& store, std::uint64_t seed) {
  const std::uint64_t graph_seed = mix64(seed ^ 0x6d6f64656c73ull);  // "models"
  auto bind_all = [&]<model M>() {
    using P = program<M>;
    static_assert(P::ok);
    for (int v = 0; v < P::plan.n_variables; ++v)
      store.bind(P::nodes[std::size_t(P::plan.variables[std::size_t(v)])], std::span<const double>(P::pool.data(), P::pool.size()), graph_seed);
  };
  (bind_all.template operator()<Models>(), ...);
}

namespace detail {
// "<prefix><index><suffix>", e.g. "res3/conv_a": names of repeated blocks.
constexpr name_text indexed(std::string_view prefix, std::int64_t index, std::string_view suffix) {
  name_text n(prefix);
  n.append(index).append(suffix);
  return n;
}
}  // namespace detail

}  // namespace kiln::models
