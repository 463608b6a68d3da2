// The seed's ResNet: a conv stem, N identity residual blocks, a conv, global average pooling and
// a dense classifier with dropout.
#pragma once
#include <cstdint>
#include <string_view>
#include "classifier.hpp"

namespace kiln::models {

// The seed's res_net_block(x, filters, conv_size): Conv2D(same, relu) -> BatchNorm -> Conv2D(same)
// -> BatchNorm -> Add(x) -> ReLU. The identity shortcut needs x to have `filters` channels.
// Variables: <name>/conv_a/*, <name>/bn_a/*, <name>/conv_b/*, <name>/bn_b/*.
constexpr tensor res_block(graph& g, std::string_view name, tensor x, std::int64_t filters, std::int64_t kernel, bool training) {
  auto part = [&](std::string_view suffix) {
    name_text n(name);
    n.append(suffix);
    return n;
  };
  tensor h = layers::conv2d(g, part("/conv_a").view(), x, {.filters = filters, .kernel = kernel, .padding = padding::same, .activation = activation::relu});
  h = batch_norm(g, part("/bn_a").view(), h, training);
  h = layers::conv2d(g, part("/conv_b").view(), h, {.filters = filters, .kernel = kernel, .padding = padding::same});
  h = batch_norm(g, part("/bn_b").view(), h, training);
  return relu(h + x);
}

inline constexpr double resnet_dropout_rate = 0.5;

// Conv2D(32, 3, relu) -> Conv2D(64, 3, relu) -> MaxPool(3) -> N x res_block(64, 3) ->
// Conv2D(64, 3, relu) -> GlobalAveragePooling -> Dense(256, relu) -> Dropout(0.5) -> Dense(10).
// On 28x28 images: 26x26x32 -> 24x24x64 -> 8x8x64 (the blocks) -> 6x6x64 -> 64 -> 256 -> 10.
// Variables: conv1/*, conv2/*, res1/* ... resN/*, conv3/*, dense/*, logits/*; dropout/counter.
template <int N> constexpr tensor resnet(graph& g, tensor images, bool training) {
  static_assert(N >= 0 && N < 1000, "resnet<N>: N residual blocks, 0 <= N < 1000");
  tensor h = layers::conv2d(g, "conv1", images, {.filters = 32, .kernel = 3, .activation = activation::relu});
  h = layers::conv2d(g, "conv2", h, {.filters = 64, .kernel = 3, .activation = activation::relu});
  h = max_pool2d(h, 3);
  for (int i = 0; i < N; ++i) h = res_block(g, detail::indexed("res", i + 1, "").view(), h, 64, 3, training);
  h = layers::conv2d(g, "conv3", h, {.filters = 64, .kernel = 3, .activation = activation::relu});
  h = layers::dense(g, "dense", global_average_pooling(h), {.units = 256, .activation = activation::relu});
  h = dropout(g, "dropout", h, resnet_dropout_rate, training, 11);
  return layers::dense(g, "logits", h, {.units = 10});
}

template <int N> using resnet_train = classifier_train<&resnet<N>>;
template <int N> using resnet_infer = classifier_infer<&resnet<N>>;

}  // namespace kiln::models
