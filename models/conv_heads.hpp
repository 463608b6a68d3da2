// The seed's comparison of a global-average-pooling classifier with a fully connected one on a
// shared conv trunk, with and without dropout.
//
// The seed put the heads on a cats-vs-dogs trunk of three Conv2D(3x3) -> BatchNorm -> ReLU ->
// MaxPool(2) stages. On 28x28 images three valid stages would leave a 1x1 map, where pooling and
// flattening coincide, so the trunk here keeps its spatial size with 'same' padding and pools
// twice: a 7x7x64 map that the two heads summarize in different ways.
//   trunk: Conv2D(32, 3x3, same) -> BN -> ReLU -> MaxPool(2)    28x28 -> 14x14x32
//          Conv2D(32, 3x3, same) -> BN -> ReLU -> MaxPool(2)    14x14 -> 7x7x32
//          Conv2D(64, 3x3, same) -> BN -> ReLU                  7x7x64
//   gap:   GlobalAveragePooling -> [Dropout(0.5)] -> Dense(10)                  650 head weights
//   fc:    Flatten -> Dense(100, relu) -> [Dropout(0.5)] -> Dense(10)      314,710 head weights
#pragma once
#include <cstdint>
#include "classifier.hpp"

namespace kiln::models {

enum class head : std::uint8_t { gap, fc };

inline constexpr double head_dropout_rate = 0.5;

// The trunk's variables: trunk1/*, trunk_bn1/*, ... trunk3/*, trunk_bn3/*.
constexpr tensor conv_trunk(graph& g, tensor images, bool training) {
  constexpr std::int64_t filters[] = {32, 32, 64};
  tensor h = images;
  for (std::int64_t i = 0; i < 3; ++i) {
    h = layers::conv2d(g, detail::indexed("trunk", i + 1, "").view(), h,
                       {.filters = filters[i], .kernel = 3, .padding = padding::same});
    h = relu(batch_norm(g, detail::indexed("trunk_bn", i + 1, "").view(), h, training));
    if (i < 2) h = max_pool2d(h, 2);
  }
  return h;
}

// The trunk and the head H; Dropout(0.5) before the last Dense when WithDropout. Head variables:
// gap: logits/*; fc: fc/*, logits/*. Dropout counter: head_dropout/counter.
template <head H, bool WithDropout> constexpr tensor conv_head(graph& g, tensor images, bool training) {
  const tensor features = conv_trunk(g, images, training);
  tensor h = H == head::gap ? global_average_pooling(features)
                            : layers::dense(g, "fc", flatten(features), {.units = 100, .activation = activation::relu});
  if (WithDropout) h = dropout(g, "head_dropout", h, head_dropout_rate, training, 7);
  return layers::dense(g, "logits", h, {.units = 10});
}

template <head H, bool WithDropout> using conv_head_train = classifier_train<&conv_head<H, WithDropout>>;
template <head H, bool WithDropout> using conv_head_infer = classifier_infer<&conv_head<H, WithDropout>>;

}  // namespace kiln::models
