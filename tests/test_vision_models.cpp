// The seeds' image classifiers (models/), part 1: the MNIST CNN and the 784-300-10 MLP (the conv
// heads and the ResNet are in test_vision_models_conv.cpp and _resnet.cpp, so that each file
// compiles in well under a minute). For each: Keras' variable shapes, logits [n,10], a few Adam
// steps on one fixed batch lower its loss, and the inference graph reads the weights the train
// step wrote (the MLP's logits are checked against a forward pass on the host). A skipped case
// times the CNN's train step (run it with --no-skip).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <chrono>
#include <cmath>
#include "vision_models_util.hpp"

using namespace kiln;
using namespace vision_test;

TEST_CASE("vision_models.mnist_cnn.batch_tiling_changes_nothing") {
  check_batch_tiling_changes_nothing<models::mnist_cnn_train, models::mnist_cnn_infer>(64);
  check_batch_tiling_changes_nothing<models::mnist_cnn_train, models::mnist_cnn_infer>(13);
}

TEST_CASE("vision_models.mlp.tiled_optimizer_updates_change_nothing") {
  // no image op: the only segments are Adam's m, v and w updates of the [784,300] kernel
  check_batch_tiling_changes_nothing<models::mlp_train, models::mlp_infer>(37);
}

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
