// A fully connected layer's computation as one op the graph keeps until lowering (ONNX's Gemm plus
// its activation): fully_connected(x, w, b, activation) = activation(x·w + b) for x [?,K] or [B,M,K],
// w [K,N], b [N]. Lowered to a matmul whose elementwise consumer (bias, activation) becomes its
// epilogue. Its gradient is its lowering's.
#pragma once
#include <source_location>
#include "elementwise.hpp"
#include "matmul.hpp"
#include "rules.hpp"

namespace kiln {

constexpr tensor fully_connected(tensor x, tensor w, tensor b, epilogue_activation activation = epilogue_activation::linear,
                       std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return detail::invalid_of(x);
  if (!w.valid()) return detail::invalid_of(w);
  if (!b.valid()) return detail::invalid_of(b);
  graph& g = *x.g;
  const tensor product = matmul(x, w, false, false, loc);  // checks x and w, and gives the shape
  if (!product.valid()) return product;
  const shape ps = product.shape();
  if (b.type() != x.type() || b.rank() != 1 || b.shape().dim[0] != ps.dim[ps.rank - 1])
    return g.fail_with("fully_connected", loc, "the bias must be ", x.type(), " [", ps.dim[ps.rank - 1], "] for w ", w.shape(), ", got ", b.type(), " ",
                       b.shape());
  node n;
  n.kind = op::fully_connected;
  n.type = x.type();
  n.out = ps;
  n.n_in = 3;
  n.in[0] = x.id;
  n.in[1] = w.id;
  n.in[2] = b.id;
  fully_connected_attrs{activation}.store(n);
  return g.add(n, loc);
}

KILN_LOWER(fully_connected) {
  using detail::no_loc;
  const tensor y = add(matmul(tensor{&g, n.in[0]}, tensor{&g, n.in[1]}, false, false, no_loc), tensor{&g, n.in[2]}, no_loc);
  switch (fully_connected_attrs::of(n).activation) {
    case epilogue_activation::relu: return relu(y, no_loc);
    case epilogue_activation::sigmoid: return sigmoid(y, no_loc);
    case epilogue_activation::tanh: return tanh(y, no_loc);
    case epilogue_activation::softplus: return softplus(y, no_loc);
    case epilogue_activation::linear: break;
  }
  return y;
}

}  // namespace kiln
