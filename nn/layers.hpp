// Keras-style layers: each creates its variables under its name and returns its output, built
// from graph ops (conv2d, dense, the pools and batch_norm stay visible as themselves until
// lowering; dropout keeps its RNG counter in the graph), so every layer has gradients and runs on
// every backend.
#pragma once
#include <cstdint>
#include <source_location>
#include <string_view>
#include "../ops/conv.hpp"
#include "../ops/fully_connected.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/layout.hpp"
#include "../ops/matmul.hpp"
#include "../ops/pool.hpp"
#include "activations.hpp"
#include "dropout.hpp"
#include "normalization.hpp"
#include "random.hpp"

namespace kiln {

enum class activation : std::uint8_t { linear, relu, sigmoid, tanh, softplus, softmax };

constexpr tensor activate(tensor x, activation a, std::source_location loc = std::source_location::current()) {
  switch (a) {
    case activation::relu: return relu(x, loc);
    case activation::sigmoid: return sigmoid(x, loc);
    case activation::tanh: return tanh(x, loc);
    case activation::softplus: return softplus(x, loc);
    case activation::softmax: return softmax(x, -1, loc);
    default: return x;
  }
}

namespace layer_detail {
constexpr name_text suffixed(std::string_view name, std::string_view suffix) {
  name_text n(name);
  n.append(suffix);
  return n;
}
constexpr bool fits(std::string_view name, std::string_view suffix) { return name.size() + suffix.size() <= max_name_length; }
}  // namespace layer_detail

namespace layers {

struct conv2d_options {
  std::int64_t filters = 0;
  std::int64_t kernel = 0;  // square kernel: kernel × kernel
  std::int64_t stride = 1;
  kiln::padding padding = kiln::padding::valid;
  kiln::activation activation = kiln::activation::linear;
  bool use_bias = true;
  initializer kernel_initializer = init::glorot_uniform();
};

// Keras Conv2D on x [batch,H,W,C]: variables <name>/kernel [k,k,C,filters] (Glorot-uniform by
// default, fan_in = k·k·C, fan_out = k·k·filters as in Keras) and <name>/bias [filters] (zeros).
// Bias and activation run in the matmul's epilogue.
constexpr tensor conv2d(graph& g, std::string_view name, tensor x, conv2d_options o,
                        std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (!layer_detail::fits(name, "/kernel")) return g.fail_with("conv2d", loc, "'", name, "' is too long for its variables' names (63 characters)");
  if (x.rank() != 4 || x.shape().dim[3] == batch || o.filters < 1 || o.kernel < 1)
    return g.fail_with("conv2d", loc, "'", name, "': expects x [batch,H,W,C] and filters, kernel >= 1, got x ", x.shape(), ", filters ",
                       o.filters, ", kernel ", o.kernel);
  const tensor w = g.variable(layer_detail::suffixed(name, "/kernel").view(), x.type(), shape{o.kernel, o.kernel, x.shape().dim[3], o.filters},
                              o.kernel_initializer, true, loc);
  tensor y = kiln::conv2d(x, w, o.stride, o.padding, loc);
  if (!y.valid()) return y;
  if (o.use_bias) y = add(y, g.variable(layer_detail::suffixed(name, "/bias").view(), x.type(), shape{o.filters}, init::zeros(), true, loc), loc);
  return activate(y, o.activation, loc);
}

struct dense_options {
  std::int64_t units = 0;
  kiln::activation activation = kiln::activation::linear;
  bool use_bias = true;
  initializer kernel_initializer = init::glorot_uniform();
};

// Keras Dense on x [batch,features]: <name>/kernel [features,units] (Glorot-uniform), <name>/bias
// [units] (zeros): the fully_connected op (ops/fully_connected.hpp), whose bias and activation run in the matmul's
// epilogue once lowered.
constexpr tensor dense(graph& g, std::string_view name, tensor x, dense_options o, std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (!layer_detail::fits(name, "/kernel")) return g.fail_with("dense", loc, "'", name, "' is too long for its variables' names (63 characters)");
  if (x.rank() != 2 || x.shape().dim[1] == batch || o.units < 1)
    return g.fail_with("dense", loc, "'", name, "': expects x [batch,features] and units >= 1, got x ", x.shape(), ", units ", o.units);
  const tensor w = g.variable(layer_detail::suffixed(name, "/kernel").view(), x.type(), shape{x.shape().dim[1], o.units}, o.kernel_initializer, true, loc);
  if (!o.use_bias) return activate(matmul(x, w, false, false, loc), o.activation, loc);
  const tensor b = g.variable(layer_detail::suffixed(name, "/bias").view(), x.type(), shape{o.units}, init::zeros(), true, loc);
  switch (o.activation) {  // activations a GEMM epilogue applies: part of the fully_connected op
    case activation::linear: return kiln::fully_connected(x, w, b, epilogue_activation::linear, loc);
    case activation::relu: return kiln::fully_connected(x, w, b, epilogue_activation::relu, loc);
    case activation::sigmoid: return kiln::fully_connected(x, w, b, epilogue_activation::sigmoid, loc);
    case activation::tanh: return kiln::fully_connected(x, w, b, epilogue_activation::tanh, loc);
    case activation::softplus: return kiln::fully_connected(x, w, b, epilogue_activation::softplus, loc);
    default: return activate(kiln::fully_connected(x, w, b, epilogue_activation::linear, loc), o.activation, loc);
  }
}

}  // namespace layers

}  // namespace kiln
