// The 784-300-10 network of the seed's TensorFlow tutorial.
#pragma once
#include "classifier.hpp"

namespace kiln::models {

// Flatten -> Dense(300, relu) -> Dense(10). The tutorial draws its weights from Normal(0, 0.03)
// and its biases from Normal(0, 1) and trains with Adam at Keras' defaults, batch 100; the same
// here. Variables: hidden/*, output/*. `training` changes nothing (no batch norm, no dropout); it
// is there so the MLP plugs into classifier_train / classifier_infer like every other network.
constexpr tensor mlp(graph& g, tensor images, bool /*training*/) {
  const tensor x = flatten(images);
  const std::int64_t inputs = x.valid() ? x.shape().dim[1] : 0;
  const tensor w1 = g.variable("hidden/kernel", dtype::f32, {inputs, 300}, init::normal(0, 0.03));
  const tensor b1 = g.variable("hidden/bias", dtype::f32, {300}, init::normal(0, 1));
  const tensor w2 = g.variable("output/kernel", dtype::f32, {300, 10}, init::normal(0, 0.03));
  const tensor b2 = g.variable("output/bias", dtype::f32, {10}, init::normal(0, 1));
  return matmul(relu(matmul(x, w1) + b1), w2) + b2;
}

using mlp_train = classifier_train<&mlp>;
using mlp_infer = classifier_infer<&mlp>;

}  // namespace kiln::models
