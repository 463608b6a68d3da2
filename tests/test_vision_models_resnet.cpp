// The seeds' image classifiers (models/), part 3: the ResNet with one residual block: Keras'
// variable shapes, a few Adam steps on one fixed batch lower the loss, and the inference graph
// reads the weights the train step wrote.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "vision_models_util.hpp"

using namespace kiln;
using namespace vision_test;

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

TEST_CASE("vision_models.resnet.batch_tiling_changes_nothing") {
  check_batch_tiling_changes_nothing<models::resnet_train<1>, models::resnet_infer<1>>(9);
}
