// The seed's MNIST CNN (moved here from nn/models.hpp).
#pragma once
#include "classifier.hpp"

namespace kiln::models {

// Conv2D(32, 2x2, relu) -> MaxPool(2) -> BatchNorm -> Conv2D(32, 2x2, relu) -> MaxPool(2) ->
// BatchNorm -> Flatten -> Dense(10). images [batch,28,28,1] (any H, W that survive the two valid
// convs and pools) -> logits [batch,10]. Variables: conv1/*, bn1/*, conv2/*, bn2/*, dense/*.
constexpr tensor mnist_cnn(graph& g, tensor images, bool training) {
  tensor h = layers::conv2d(g, "conv1", images, {.filters = 32, .kernel = 2, .activation = activation::relu});
  h = batch_norm(g, "bn1", max_pool2d(h, 2), training);
  h = layers::conv2d(g, "conv2", h, {.filters = 32, .kernel = 2, .activation = activation::relu});
  h = batch_norm(g, "bn2", max_pool2d(h, 2), training);
  return layers::dense(g, "dense", flatten(h), {.units = 10});
}

// One Adam step (Keras defaults). Feeds "images" f32 [batch,28,28,1], "labels" i32 [batch].
// Outputs "loss" (before the update), "step" (the iteration count after it).
using mnist_cnn_train = classifier_train<&mnist_cnn>;
// Inference with the moving statistics. Feeds "images". Outputs "logits", "predictions" (i32).
using mnist_cnn_infer = classifier_infer<&mnist_cnn>;

}  // namespace kiln::models
