// Plain-loop f64 forward passes of the models/ networks, written from the layers' published
// definitions (Keras Conv2D with 'valid'/'same' padding, MaxPooling2D, BatchNormalization,
// GlobalAveragePooling2D, Dense): nothing here calls kiln's ops, so a model that lost a layer or
// its residual addition disagrees with them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
#include "runtime/variables.hpp"

namespace vision_ref {

// An NHWC activation (a dense layer's output is n x 1 x 1 x c).
struct act {
  std::int64_t n = 0, h = 0, w = 0, c = 0;
  std::vector<double> v;
  double& at(std::int64_t i, std::int64_t y, std::int64_t x, std::int64_t k) { return v[std::size_t(((i * h + y) * w + x) * c + k)]; }
  double at(std::int64_t i, std::int64_t y, std::int64_t x, std::int64_t k) const {
    return v[std::size_t(((i * h + y) * w + x) * c + k)];
  }
};

inline act make(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) {
  return {n, h, w, c, std::vector<double>(std::size_t(n * h * w * c), 0.0)};
}

// A variable of the store as doubles.
inline std::vector<double> param(const kiln::variables& store, const std::string& name) {
  const auto& e = store.at(name);
  const float* p = reinterpret_cast<const float*>(e.data.data());
  return {p, p + e.shape.elements()};
}

inline act relu(act x) {
  for (double& v : x.v) v = std::max(v, 0.0);
  return x;
}

// Keras Conv2D, stride 1, kernel [k,k,C,F] + bias; same: zero padding (k-1)/2 before, the rest after.
inline act conv2d(const kiln::variables& store, const std::string& name, const act& x, std::int64_t k, bool same, bool with_relu) {
  const std::vector<double> kernel = param(store, name + "/kernel"), bias = param(store, name + "/bias");
  const std::int64_t f = std::int64_t(bias.size());
  const std::int64_t pad = same ? (k - 1) / 2 : 0;
  const std::int64_t oh = same ? x.h : x.h - k + 1, ow = same ? x.w : x.w - k + 1;
  act y = make(x.n, oh, ow, f);
  for (std::int64_t i = 0; i < x.n; ++i)
    for (std::int64_t r = 0; r < oh; ++r)
      for (std::int64_t q = 0; q < ow; ++q)
        for (std::int64_t o = 0; o < f; ++o) {
          double s = bias[std::size_t(o)];
          for (std::int64_t a = 0; a < k; ++a)
            for (std::int64_t b = 0; b < k; ++b) {
              const std::int64_t yy = r + a - pad, xx = q + b - pad;
              if (yy < 0 || yy >= x.h || xx < 0 || xx >= x.w) continue;
              for (std::int64_t ch = 0; ch < x.c; ++ch) s += x.at(i, yy, xx, ch) * kernel[std::size_t(((a * k + b) * x.c + ch) * f + o)];
            }
          y.at(i, r, q, o) = with_relu ? std::max(s, 0.0) : s;
        }
  return y;
}

// MaxPooling2D(p): windows p x p, stride p, 'valid'.
inline act max_pool(const act& x, std::int64_t p) {
  act y = make(x.n, x.h / p, x.w / p, x.c);
  for (std::int64_t i = 0; i < x.n; ++i)
    for (std::int64_t r = 0; r < y.h; ++r)
      for (std::int64_t q = 0; q < y.w; ++q)
        for (std::int64_t k = 0; k < x.c; ++k) {
          double m = -INFINITY;
          for (std::int64_t a = 0; a < p; ++a)
            for (std::int64_t b = 0; b < p; ++b) m = std::max(m, x.at(i, r * p + a, q * p + b, k));
          y.at(i, r, q, k) = m;
        }
  return y;
}

// BatchNormalization at inference (moving statistics) or in training (the batch's mean and biased
// variance over N, H, W), epsilon 1e-3 (Keras).
inline act batch_norm(const kiln::variables& store, const std::string& name, act x, bool training) {
  const std::vector<double> gamma = param(store, name + "/gamma"), beta = param(store, name + "/beta");
  std::vector<double> mean = param(store, name + "/moving_mean"), variance = param(store, name + "/moving_variance");
  const std::int64_t count = x.n * x.h * x.w;
  if (training) {
    for (std::int64_t k = 0; k < x.c; ++k) {
      double s = 0, s2 = 0;
      for (std::int64_t j = 0; j < count; ++j) s += x.v[std::size_t(j * x.c + k)];
      const double m = s / double(count);
      for (std::int64_t j = 0; j < count; ++j) s2 += (x.v[std::size_t(j * x.c + k)] - m) * (x.v[std::size_t(j * x.c + k)] - m);
      mean[std::size_t(k)] = m;
      variance[std::size_t(k)] = s2 / double(count);
    }
  }
  for (std::int64_t j = 0; j < count; ++j)
    for (std::int64_t k = 0; k < x.c; ++k) {
      double& v = x.v[std::size_t(j * x.c + k)];
      const auto kk = std::size_t(k);
      v = (v - mean[kk]) / std::sqrt(variance[kk] + 1e-3) * gamma[kk] + beta[kk];
    }
  return x;
}

inline act global_average_pooling(const act& x) {
  act y = make(x.n, 1, 1, x.c);
  for (std::int64_t i = 0; i < x.n; ++i)
    for (std::int64_t k = 0; k < x.c; ++k) {
      double s = 0;
      for (std::int64_t r = 0; r < x.h; ++r)
        for (std::int64_t q = 0; q < x.w; ++q) s += x.at(i, r, q, k);
      y.at(i, 0, 0, k) = s / double(x.h * x.w);
    }
  return y;
}

// Dense on the row-major flattening of each sample (Keras Flatten of NHWC).
inline act dense(const kiln::variables& store, const std::string& name, const act& x, bool with_relu) {
  const std::vector<double> kernel = param(store, name + "/kernel"), bias = param(store, name + "/bias");
  const std::int64_t in = x.h * x.w * x.c, units = std::int64_t(bias.size());
  act y = make(x.n, 1, 1, units);
  for (std::int64_t i = 0; i < x.n; ++i)
    for (std::int64_t u = 0; u < units; ++u) {
      double s = bias[std::size_t(u)];
      for (std::int64_t j = 0; j < in; ++j) s += x.v[std::size_t(i * in + j)] * kernel[std::size_t(j * units + u)];
      y.v[std::size_t(i * units + u)] = with_relu ? std::max(s, 0.0) : s;
    }
  return y;
}

// ---- the networks of models/ ---------------------------------------------------------------------

inline act mnist_cnn(const kiln::variables& s, const act& images, bool training) {
  act h = batch_norm(s, "bn1", max_pool(conv2d(s, "conv1", images, 2, false, true), 2), training);
  h = batch_norm(s, "bn2", max_pool(conv2d(s, "conv2", h, 2, false, true), 2), training);
  return dense(s, "dense", h, false);
}

// models::res_block: conv(relu) -> BN -> conv -> BN -> + x -> relu.
inline act res_block(const kiln::variables& s, const std::string& name, const act& x, bool training) {
  act h = batch_norm(s, name + "/bn_a", conv2d(s, name + "/conv_a", x, 3, true, true), training);
  h = batch_norm(s, name + "/bn_b", conv2d(s, name + "/conv_b", h, 3, true, false), training);
  for (std::size_t i = 0; i < h.v.size(); ++i) h.v[i] += x.v[i];
  return relu(std::move(h));
}

// models::resnet<blocks> at inference (dropout is the identity there).
inline act resnet(const kiln::variables& s, const act& images, int blocks) {
  act h = conv2d(s, "conv2", conv2d(s, "conv1", images, 3, false, true), 3, false, true);
  h = max_pool(h, 3);
  for (int b = 1; b <= blocks; ++b) h = res_block(s, "res" + std::to_string(b), h, false);
  h = conv2d(s, "conv3", h, 3, false, true);
  return dense(s, "logits", dense(s, "dense", global_average_pooling(h), true), false);
}

// models::conv_head<head::gap, dropout> at inference.
inline act conv_head_gap(const kiln::variables& s, const act& images) {
  act h = images;
  for (int i = 1; i <= 3; ++i) {
    h = relu(batch_norm(s, "trunk_bn" + std::to_string(i), conv2d(s, "trunk" + std::to_string(i), h, 3, true, false), false));
    if (i < 3) h = max_pool(h, 2);
  }
  return dense(s, "logits", global_average_pooling(h), false);
}

// The mean sparse softmax cross-entropy of logits [n, 1, 1, classes].
inline double mean_cross_entropy(const act& logits, const std::vector<std::int32_t>& labels) {
  double total = 0;
  for (std::int64_t i = 0; i < logits.n; ++i) {
    double m = -INFINITY, z = 0;
    for (std::int64_t k = 0; k < logits.c; ++k) m = std::max(m, logits.v[std::size_t(i * logits.c + k)]);
    for (std::int64_t k = 0; k < logits.c; ++k) z += std::exp(logits.v[std::size_t(i * logits.c + k)] - m);
    total += std::log(z) + m - logits.v[std::size_t(i * logits.c + labels[std::size_t(i)])];
  }
  return total / double(logits.n);
}

}  // namespace vision_ref
