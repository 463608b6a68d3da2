// The seeds' image classifiers (models/), part 2: the GAP and FC heads on the shared conv trunk
// (Keras' variable shapes, logits [n,10], a few Adam steps on one fixed batch lower the loss, and
// the inference graph reads the weights the train step wrote). The ResNet is in
// test_vision_models_resnet.cpp: each file compiles in well under a minute.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "vision_models_util.hpp"

using namespace kiln;
using namespace vision_test;

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

TEST_CASE("vision_models.conv_heads.tiling_changes_nothing") {
  check_batch_tiling_changes_nothing<models::conv_head_train<models::head::fc, true>, models::conv_head_infer<models::head::fc, true>>(11);
}
