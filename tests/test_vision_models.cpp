// The seeds' image classifiers (models/): the MNIST CNN, the 784-300-10 MLP, the GAP and FC heads
// on the shared conv trunk, the ResNet. For each: Keras' variable shapes, logits [n,10], a few Adam
// steps on one fixed batch lower its loss, and the inference graph reads the weights the train
// step wrote (the MLP's logits are checked against a forward pass on the host); the GAP head's
// inference graph only, to keep this file's compile time under a minute. A skipped case times the
// CNN's train step (run it with --no-skip).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <chrono>
#include <cmath>
#include "models/models.hpp"
#include "test_util.hpp"

using namespace kiln;

namespace {

struct batch_data {
  std::vector<float> images;
  std::vector<std::int32_t> labels;
};

// Images whose class is visible in them (a bright square at a class-dependent place over noise),
// so that the loss has somewhere to go.
batch_data make_batch(std::int64_t n, std::uint64_t seed) {
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

std::vector<float> copy_of(const variables& store, std::string_view name) {
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

void check_loss_falls(const std::vector<double>& losses) {
  REQUIRE(losses.size() >= 2);
  CHECK(std::isfinite(losses.front()));
  CHECK(losses.front() > 1.0);  // about log(10) = 2.3 for an untrained 10-class head
  MESSAGE("loss: first " << losses.front() << ", after " << losses.size() - 1 << " Adam steps " << losses.back());
  CHECK(losses.back() < 0.9 * losses.front());
}

}  // namespace

TEST_CASE("vision_models.mnist_cnn.one_adam_step_lowers_the_loss") {
  variables store;
  auto train = compile<cpu>(models::mnist_cnn_train{}, &store);
  auto infer = compile<cpu>(models::mnist_cnn_infer{}, &store);
  // Keras' shapes: conv 2x2x1x32, conv 2x2x32x32, dense 1152x10
  CHECK(store.at("conv1/kernel").shape == dims{2, 2, 1, 32});
  CHECK(store.at("conv2/kernel").shape == dims{2, 2, 32, 32});
  CHECK(store.at("dense/kernel").shape == dims{6 * 6 * 32, 10});
  CHECK(store.at("bn2/moving_variance").shape == dims{32});
  const std::int64_t n = 64;
  const batch_data b = make_batch(n, 1);
  const std::vector<feed> feeds = {{"images", view(b.images, {n, 28, 28, 1})}, {"labels", view(b.labels, {n})}};
  const double loss0 = train.run(std::span<const feed>(feeds)).get<float>("loss").item();
  CHECK(std::isfinite(loss0));
  CHECK(loss0 > 1.0);  // about log(10) = 2.3 for an untrained 10-class head
  const auto& out = train.run(std::span<const feed>(feeds));
  const double loss1 = out.get<float>("loss").item();
  CHECK(out.get<std::int64_t>("step").item() == 2);
  MESSAGE("loss before " << loss0 << ", after one Adam step " << loss1);
  CHECK(loss1 < loss0);
  // the moving statistics moved away from their initial values
  CHECK(store.at("bn1/moving_mean").ref().as<float>().flat()[0] != 0.0f);

  // a few more steps keep going down, at another batch size too
  const batch_data small = make_batch(5, 2);
  train.run({{"images", view(small.images, {5, 28, 28, 1})}, {"labels", view(small.labels, {5})}});
  double last = loss1;
  for (int i = 0; i < 5; ++i) last = train.run(std::span<const feed>(feeds)).get<float>("loss").item();
  CHECK(last < loss1);

  const auto& pred = infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  REQUIRE(pred.get<float>("logits").shape() == dims{n, 10});
  for (std::int32_t p : pred.get<std::int32_t>("predictions").flat()) CHECK((p >= 0 && p < 10));
}

TEST_CASE("vision_models.mlp.shapes_training_and_host_forward_pass") {
  variables store;
  models::seed_variables<models::mlp_train>(store, 5);
  CHECK(store.at("hidden/kernel").shape == dims{784, 300});
  CHECK(store.at("hidden/bias").shape == dims{300});
  CHECK(store.at("output/kernel").shape == dims{300, 10});
  // the tutorial's initial weights: Normal(0, 0.03) kernels, Normal(0, 1) biases
  const auto w1 = copy_of(store, "hidden/kernel"), b1 = copy_of(store, "hidden/bias");
  double sw = 0, sb = 0;
  for (float v : w1) sw += double(v) * v;
  for (float v : b1) sb += double(v) * v;
  CHECK(std::sqrt(sw / double(w1.size())) == doctest::Approx(0.03).epsilon(0.02));
  CHECK(std::sqrt(sb / double(b1.size())) == doctest::Approx(1.0).epsilon(0.15));

  check_loss_falls(train_on_one_batch<models::mlp_train, models::mlp_infer>(store, 32, 6));

  // logits of the inference graph = relu(x W1 + b1) W2 + b2 with the store's current weights
  auto infer = compile<cpu>(models::mlp_infer{}, &store);
  const std::int64_t n = 3;
  const batch_data b = make_batch(n, 9);
  const auto logits = infer.run({{"images", view(b.images, {n, 28, 28, 1})}}).get<float>("logits").flat();
  const auto W1 = copy_of(store, "hidden/kernel"), B1 = copy_of(store, "hidden/bias");
  const auto W2 = copy_of(store, "output/kernel"), B2 = copy_of(store, "output/bias");
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> h(300);
    for (std::size_t j = 0; j < 300; ++j) {
      double s = B1[j];
      for (std::size_t p = 0; p < 784; ++p) s += double(b.images[std::size_t(i) * 784 + p]) * W1[p * 300 + j];
      h[j] = std::max(s, 0.0);
    }
    for (std::size_t c = 0; c < 10; ++c) {
      double s = B2[c];
      for (std::size_t j = 0; j < 300; ++j) s += h[j] * W2[j * 10 + c];
      CHECK(double(logits[std::size_t(i) * 10 + c]) == doctest::Approx(s).epsilon(1e-4));
    }
  }
}

TEST_CASE("vision_models.seed_variables.decides_the_initial_weights") {
  variables a, b, c;
  models::seed_variables<models::mlp_train>(a, 1);
  models::seed_variables<models::mlp_train>(b, 1);
  models::seed_variables<models::mlp_train>(c, 2);
  CHECK(copy_of(a, "hidden/kernel") == copy_of(b, "hidden/kernel"));
  CHECK(copy_of(a, "hidden/kernel") != copy_of(c, "hidden/kernel"));
  // an executor compiled afterwards keeps the seeded values
  const auto seeded = copy_of(c, "output/bias");
  auto infer = compile<cpu>(models::mlp_infer{}, &c);
  CHECK(copy_of(c, "output/bias") == seeded);
  CHECK(c.size() == a.size());
}

TEST_CASE("vision_models.conv_heads.gap") {
  // Only the inference graph here: the train step is the FC case's with another head, and each
  // train step adds ~15 s to this file's compile time (examples/fashion_cnn trains it).
  variables store;
  auto infer = compile<cpu>(models::conv_head_infer<models::head::gap, false>{}, &store);
  CHECK(store.at("trunk1/kernel").shape == dims{3, 3, 1, 32});
  CHECK(store.at("trunk2/kernel").shape == dims{3, 3, 32, 32});
  CHECK(store.at("trunk3/kernel").shape == dims{3, 3, 32, 64});
  CHECK(store.at("trunk_bn3/gamma").shape == dims{64});
  CHECK(store.at("logits/kernel").shape == dims{64, 10});  // GAP: 64 channels straight into the classifier
  CHECK(store.find("fc/kernel") == nullptr);
  CHECK(store.find("head_dropout/counter") == nullptr);
  const std::int64_t n = 4;
  const batch_data b = make_batch(n, 4);
  const auto& out = infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  REQUIRE(out.get<float>("logits").shape() == dims{n, 10});
  // the head is one affine map of the pooled features: with its kernel zeroed, the logits are its bias
  auto w = store.get<float>("logits/kernel");
  auto bias = store.get<float>("logits/bias");
  for (auto& v : w.flat()) v = 0;
  for (std::size_t c = 0; c < 10; ++c) bias.flat()[c] = float(c) * 0.5f;
  const auto logits = infer.run({{"images", view(b.images, {n, 28, 28, 1})}}).get<float>("logits").flat();
  for (std::size_t i = 0; i < std::size_t(n); ++i)
    for (std::size_t c = 0; c < 10; ++c) CHECK(logits[i * 10 + c] == float(c) * 0.5f);
}

TEST_CASE("vision_models.conv_heads.fc_with_dropout") {
  variables store;
  const auto losses = train_on_one_batch<models::conv_head_train<models::head::fc, true>, models::conv_head_infer<models::head::fc, true>>(store, 32, 6);
  CHECK(store.at("fc/kernel").shape == dims{7 * 7 * 64, 100});  // 'same' trunk: 7x7x64 flattened
  CHECK(store.at("logits/kernel").shape == dims{100, 10});
  // the train step advanced the dropout counter once per step: a new mask every step
  CHECK(store.at("head_dropout/counter").ref().as<std::int64_t>().flat()[0] == 6);
  check_loss_falls(losses);
}

TEST_CASE("vision_models.resnet.one_block") {
  variables store;
  const auto losses = train_on_one_batch<models::resnet_train<1>, models::resnet_infer<1>>(store, 16, 6);
  CHECK(store.at("conv1/kernel").shape == dims{3, 3, 1, 32});
  CHECK(store.at("conv2/kernel").shape == dims{3, 3, 32, 64});
  CHECK(store.at("res1/conv_a/kernel").shape == dims{3, 3, 64, 64});
  CHECK(store.at("res1/conv_b/kernel").shape == dims{3, 3, 64, 64});
  CHECK(store.at("res1/bn_b/moving_mean").shape == dims{64});
  CHECK(store.find("res2/conv_a/kernel") == nullptr);
  CHECK(store.at("conv3/kernel").shape == dims{3, 3, 64, 64});
  CHECK(store.at("dense/kernel").shape == dims{64, 256});
  CHECK(store.at("logits/kernel").shape == dims{256, 10});
  check_loss_falls(losses);
}

TEST_CASE("vision_models.mnist_cnn.train_step_throughput" * doctest::skip()) {
  auto train = compile<cpu>(models::mnist_cnn_train{});
  const std::int64_t n = 64;
  const batch_data b = make_batch(n, 3);
  const std::vector<feed> feeds = {{"images", view(b.images, {n, 28, 28, 1})}, {"labels", view(b.labels, {n})}};
  for (int i = 0; i < 5; ++i) train.run(std::span<const feed>(feeds));
  const int steps = 100;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) train.run(std::span<const feed>(feeds));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("mnist_cnn train step, batch " << n << ": " << s / steps * 1e3 << " ms/step, " << double(n * steps) / s << " images/s");
}
