// examples/fashion_cnn: the seed's MNIST CNN and the TensorFlow tutorial's 784-300-10 MLP.
#include <models/mlp.hpp>
#include <models/mnist_cnn.hpp>
#include "fashion_cnn.hpp"

namespace fashion_example {

int run_cnn(const flags& f) {
  static constexpr model_info info{"cnn", "the seed's MNIST CNN: conv 32 2x2 relu, maxpool 2, BN, conv 32 2x2 relu, maxpool 2, BN, dense 10",
                                   "conv1/kernel", 2, 2, 32, 64, 5, 2e-3};
  return train_and_test<&models::mnist_cnn>(f, info);
}

int run_mlp(const flags& f) {
  static constexpr model_info info{"mlp", "the seed's TensorFlow tutorial: 784-300 relu-10, N(0, 0.03) weights, N(0, 1) biases",
                                   "hidden/kernel", 28, 28, 300, 100, 10};
  return train_and_test<&models::mlp>(f, info);
}

}  // namespace fashion_example
