// Shared by tests/test_vision_models*.cpp: a batch whose class is visible in the images, and a
// few Adam steps on it through a model's train graph with its inference graph checked alongside.
#pragma once
#include <cmath>
#include <cstring>
#include <span>
#include "models/models.hpp"
#include "test_util.hpp"

namespace vision_test {

using namespace kiln;

struct batch_data {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
};

// Images whose class is visible in them (a bright square at a class-dependent place over noise),
// so that the loss has somewhere to go.
inline batch_data make_batch(std::int64_t n, std::uint64_t seed) {
  kt::rng r(seed);
  batch_data b{std::vector<float>(std::size_t(n * 28 * 28)), std::vector<std::int32_t>(std::size_t(n))};
  for (std::int64_t i = 0; i < n; ++i) {
    const auto label = std::int32_t(r.integer(0, 9));
    b.labels[std::size_t(i)] = label;
    for (std::int64_t p = 0; p < 28 * 28; ++p) b.images[std::size_t(i * 784 + p)] = float(r.uniform(0, 0.3));
    const std::int64_t top = 2 + 2 * (label / 5) * 6, left = 2 + (label % 5) * 5;
    for (std::int64_t y = top; y < top + 6; ++y)
      for (std::int64_t x = left; x < left + 4; ++x) b.images[std::size_t(i * 784 + y * 28 + x)] = 1.0f;
  }
  return b;
}

inline std::vector<float> copy_of(const variables& store, std::string_view name) {
  const auto& e = store.at(name);
  const float* p = reinterpret_cast<const float*>(e.data.data());
  return {p, p + e.shape.elements()};
}

// Trains `steps` Adam steps on one batch of n and returns the losses (before each update); checks
// that the inference graph over the same store sees the change.
template <class Train, class Infer> std::vector<double> train_on_one_batch(variables& store, std::int64_t n, int steps) {
  auto train = compile<cpu>(Train{}, &store);
  auto infer = compile<cpu>(Infer{}, &store);
  const batch_data b = make_batch(n, 1);
  const std::vector<feed> feeds = {{"images", view(b.images, {n, 28, 28, 1})}, {"labels", view(b.labels, {n})}};
  const auto& before = infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  REQUIRE(before.template get<float>("logits").shape() == dims{n, 10});
  const auto logits0 = std::vector<float>(before.template get<float>("logits").flat().begin(), before.template get<float>("logits").flat().end());
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    const auto& out = train.run(std::span<const feed>(feeds));
    losses.push_back(out.template get<float>("loss").item());
    CHECK(out.template get<std::int64_t>("step").item() == i + 1);
  }
  const auto& after = infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  const auto logits1 = after.template get<float>("logits").flat();
  double moved = 0;
  for (std::size_t i = 0; i < logits0.size(); ++i) moved = std::max(moved, double(std::fabs(logits1[i] - logits0[i])));
  CHECK(moved > 1e-3);  // the inference graph reads the trained weights
  const auto predictions = after.template get<std::int32_t>("predictions").flat();
  for (std::size_t i = 0; i < std::size_t(n); ++i) {  // predictions = argmax(logits), first maximum on ties
    std::size_t best = 0;
    for (std::size_t c = 1; c < 10; ++c)
      if (logits1[i * 10 + c] > logits1[i * 10 + best]) best = c;
    CHECK(predictions[i] == std::int32_t(best));
  }
  return losses;
}

// Tiled segments (backends/cpu/batch_segments.hpp: conv chains by samples, optimizer updates by
// element chunks) change the order in which groups visit the data, never what is computed: two
// train steps at batch n with and without them must agree bit for bit in every output and every
// variable. n not a multiple of the tile leaves a short tile.
template <class Train, class Infer> void check_batch_tiling_changes_nothing(std::int64_t n) {
  variables tiled_store, plain_store;
  auto tiled = compile<cpu>(Train{}, &tiled_store);
  auto plain = compile<cpu>(Train{}, &plain_store);
  plain.set_tiling(false);
  auto tiled_infer = compile<cpu>(Infer{}, &tiled_store);
  auto plain_infer = compile<cpu>(Infer{}, &plain_store);
  plain_infer.set_tiling(false);
  // the train graph has segments: the test runs the tiled path
  REQUIRE(decltype(tiled)::tiled_segment_count() > 0);
  const batch_data b = make_batch(n, 7);
  const std::vector<feed> feeds = {{"images", view(b.images, {n, 28, 28, 1})}, {"labels", view(b.labels, {n})}};
  auto same_bits = [](std::span<const float> x, std::span<const float> y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size_bytes()) == 0;
  };
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const auto& t = tiled.run(std::span<const feed>(feeds));
    const auto& p = plain.run(std::span<const feed>(feeds));
    CHECK(t.template get<float>("loss").item() == p.template get<float>("loss").item());
  }
  REQUIRE(tiled_store.size() == plain_store.size());
  for (std::size_t i = 0; i < tiled_store.size(); ++i) {
    const auto& v = tiled_store[i];
    CAPTURE(v.name);
    const auto& w = plain_store.at(v.name);
    REQUIRE(v.data.size() == w.data.size());
    CHECK(std::memcmp(v.data.data(), w.data.data(), v.data.size()) == 0);
  }
  const auto& ti = tiled_infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  const auto& pi = plain_infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  CHECK(same_bits(ti.template get<float>("logits").flat(), pi.template get<float>("logits").flat()));
}

inline void check_loss_falls(const std::vector<double>& losses) {
  REQUIRE(losses.size() >= 2);
  CHECK(std::isfinite(losses.front()));
  CHECK(losses.front() > 1.0);  // about log(10) = 2.3 for an untrained 10-class head
  MESSAGE("loss: first " << losses.front() << ", after " << losses.size() - 1 << " Adam steps " << losses.back());
  CHECK(losses.back() < 0.9 * losses.front());
}

}  // namespace vision_test
