// The dense layer relu(x·W + b) shared by bench/dense_layer.cpp and its LibTorch peer: the kiln
// models, deterministic data, and the hand-written Eigen reference.
#pragma once
#include <cmath>
#include <cstdio>
#include <vector>
#include <Eigen/Core>
#include <kiln.hpp>
#include "bench_util.hpp"

namespace dense {

using namespace kiln;

template <std::int64_t K, std::int64_t N> constexpr auto layer = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, K});
  tensor w = g.variable("W", f32, {K, N}, init::glorot_uniform(1));
  tensor b = g.variable("b", f32, {N}, init::uniform(-0.1, 0.1, 2));
  g.output("y", relu(matmul(x, w) + b));
  return g;
};

inline std::vector<float> input(std::int64_t rows, std::int64_t cols, double phase) {
  std::vector<float> v(std::size_t(rows * cols));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(std::sin(double(i) * 0.37 + phase));
  return v;
}

using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Hand-written Eigen, single-threaded (Eigen without OpenMP): Y = relu((X*W).rowwise() + b),
// product straight into the preallocated output, then one pass for bias and relu.
struct eigen_layer {
  Eigen::Map<const row_major> W;
  Eigen::Map<const Eigen::RowVectorXf> b;
  row_major Y;
  eigen_layer(const float* w, const float* bias, std::int64_t K, std::int64_t N) : W(w, K, N), b(bias, N) {}
  const float* operator()(const float* x, std::int64_t M) {
    if (Y.rows() != M) Y.resize(M, W.cols());
    Eigen::Map<const row_major> X(x, M, W.rows());
    Y.noalias() = X * W;
    Y = (Y.rowwise() + b).cwiseMax(0.f);
    return Y.data();
  }
};

inline double max_abs_diff(const float* a, const float* b, std::int64_t n) {
  double m = 0;
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// Runs executor `ex` with x as the feed; binding the feed is part of what is timed.
template <class Ex> KILN_INLINE const float* run(Ex& ex, const float* x, std::int64_t M, std::int64_t K) {
  const feed f[] = {{"x", view(x, dims{M, K})}};
  return ex.run(f).template get<float>("y").data();
}

}  // namespace dense
