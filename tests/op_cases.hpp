// The test registry: every op of the op table (graph/op_table.hpp) declared once as a test case,
// or exempt with a reason. A case is
//   - a graph snippet that builds the op from its inputs (placeholders named "<op>.<input>"),
//   - the inputs' dtypes, shapes and domain: a range, a gap around the kink at 0 (relu, abs, the
//     divisor of div), a grid (so that ties and equalities happen where they are meant to), and an
//     `adjust` step for kinks a range cannot express (ties of minimum and maximum),
//   - a plain-loop reference over flat vectors in double (std:: math only, nothing of kiln),
//   - the forward tolerance, and the finite-difference tolerance of the gradient check (0: no
//     gradient check, which only ops whose gradient kind is zero or none may declare).
// tests/test_op_cases.cpp, test_op_cases_structural.cpp and test_op_cases_windows.cpp (one TU per
// group of cases, see case_group) run every case on the CPU executor against its reference and
// check its gradients by central differences, and the elementwise cases again in f32 over
// packet-wide rows (the SIMD math); tests/cuda/test_op_cases_cuda.cu compares the CUDA executor
// with the CPU one on the same list, and tests/cuda/test_op_cases_host.cu runs the elementwise and
// window cases through the CUDA code on the host.
//
// The static_asserts at the end fail when an op of the table has no case and no exemption (the
// error names the op: "covered<kiln::op::NAME>"), when an op has two entries, or when a
// differentiable op declares no gradient tolerance.
//
// Needs only the graph and op headers: nvcc compiles it too.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>
#include "graph/graph.hpp"
#include "ops/conv.hpp"
#include "ops/elementwise.hpp"
#include "ops/fully_connected.hpp"
#include "ops/gradients.hpp"
#include "ops/indexing.hpp"
#include "ops/layout.hpp"
#include "ops/matmul.hpp"
#include "ops/normalization.hpp"
#include "ops/pool.hpp"
#include "ops/reduce.hpp"
#include "ops/softmax.hpp"
#include "ops/window.hpp"

namespace op_cases {
using namespace kiln;

inline constexpr int max_case_inputs = 5;

struct input_spec {
  std::string_view name;  // fed as "<op>.<name>"
  dtype type = dtype::f64;
  shape dims;
  double lo = -2, hi = 2;
  double gap = 0;      // keeps |x| >= gap: inputs of ops with a kink (or a pole) at 0
  double quantum = 0;  // rounds to multiples of quantum (integers: 1; comparisons: ties)
};

using values = std::vector<std::vector<double>>;  // the inputs of one case, flat, in double
using build_fn = tensor (*)(graph&, const tensor*);
using reference_fn = std::vector<double> (*)(const values&);
using adjust_fn = void (*)(values&);

struct op_case {
  op id = op::count_;
  int n_inputs = 0;
  std::array<input_spec, max_case_inputs> inputs{};
  build_fn build = nullptr;
  shape out;  // the expected shape and dtype of the result
  dtype out_type = dtype::f64;
  reference_fn reference = nullptr;
  double grad_tol = 0;  // finite-difference tolerance; 0: no gradient check
  double grad_h = 1e-6;
  double rtol = 1e-12, atol = 1e-14;  // forward, against the reference
  double rtol_f32 = 2e-6, atol_f32 = 1e-7;  // the same in f32 (SIMD approximations of a few ulp)
  adjust_fn adjust = nullptr;
  std::string_view exempt;  // non-empty: the op has no case, for this reason
  constexpr std::string_view name() const { return name_of(id); }
  constexpr bool is_case() const { return exempt.empty(); }
};

// ---- declaring cases ------------------------------------------------------------------------------

constexpr input_spec in(std::string_view name, shape dims, double lo = -2, double hi = 2, double gap = 0) {
  return input_spec{name, dtype::f64, dims, lo, hi, gap, 0};
}
constexpr input_spec typed_in(std::string_view name, dtype t, shape dims, double lo, double hi, double quantum = 1) {
  return input_spec{name, t, dims, lo, hi, 0, quantum};
}
constexpr input_spec grid_in(std::string_view name, shape dims, double quantum) { return input_spec{name, dtype::f64, dims, -2, 2, 0, quantum}; }

struct gradient_spec {
  double tol = 0, h = 1e-6;
};
inline constexpr gradient_spec no_gradient{};
inline constexpr gradient_spec fd{1e-6, 1e-6};  // the usual f64 central-difference check

constexpr op_case make(op id, std::initializer_list<input_spec> ins, build_fn build, shape out, reference_fn reference, gradient_spec grad,
                       dtype out_type = dtype::f64, adjust_fn adjust = nullptr) {
  op_case c;
  c.id = id;
  for (const input_spec& s : ins) c.inputs[std::size_t(c.n_inputs++)] = s;
  c.build = build;
  c.out = out;
  c.out_type = out_type;
  c.reference = reference;
  c.grad_tol = grad.tol;
  c.grad_h = grad.h;
  c.adjust = adjust;
  return c;
}
constexpr op_case exempt(op id, std::string_view reason) {
  op_case c;
  c.id = id;
  c.exempt = reason;
  return c;
}

// ---- reference helpers: plain loops ----------------------------------------------------------------

template <class F> std::vector<double> map1(const values& x, F f) {
  std::vector<double> r(x[0].size());
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = f(x[0][i]);
  return r;
}
template <class F> std::vector<double> map2(const values& x, F f) {
  std::vector<double> r(x[0].size());
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = f(x[0][i], x[1][i]);
  return r;
}

// x [a, r, b] reduced over r with f, from init: [a, b].
template <class F> std::vector<double> reduce_middle(const std::vector<double>& x, int a, int r, int b, double init, F f) {
  std::vector<double> out(std::size_t(a * b), init);
  for (int i = 0; i < a; ++i)
    for (int k = 0; k < r; ++k)
      for (int j = 0; j < b; ++j) {
        double& o = out[std::size_t(i * b + j)];
        o = f(o, x[std::size_t((i * r + k) * b + j)]);
      }
  return out;
}

// TF 'same' windows of k, stride s over n: the count of outputs and the padding before.
struct same_window {
  int out, before;
};
inline same_window same_of(int n, int k, int s) {
  const int out = (n + s - 1) / s, total = std::max((out - 1) * s + k - n, 0);
  return {out, total / 2};
}

// NHWC images [N,H,W,C], windows k×k with stride s and 'same' padding. Calls f(n, p, q, i, j, c, y, x)
// for every window entry inside the image (y = s·p + i - top, x = s·q + j - left).
template <class F> void for_each_window_entry(int N, int H, int W, int C, int k, int s, F f) {
  const same_window ry = same_of(H, k, s), rx = same_of(W, k, s);
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < ry.out; ++p)
      for (int q = 0; q < rx.out; ++q)
        for (int i = 0; i < k; ++i)
          for (int j = 0; j < k; ++j) {
            const int y = s * p + i - ry.before, x = s * q + j - rx.before;
            if (y < 0 || y >= H || x < 0 || x >= W) continue;
            for (int c = 0; c < C; ++c) f(n, p, q, i, j, c, y, x);
          }
}

// The flat index of the first maximum (row-major window order) of every window of a max pool
// over x [N,H,W,C] with k, s, 'same': [N,Ho,Wo,C].
inline std::vector<std::size_t> max_positions(const std::vector<double>& x, int N, int H, int W, int C, int k, int s) {
  const int ho = same_of(H, k, s).out, wo = same_of(W, k, s).out;
  std::vector<std::size_t> at(std::size_t(N * ho * wo * C), std::size_t(-1));
  for_each_window_entry(N, H, W, C, k, s, [&](int n, int p, int q, int, int, int c, int y, int xx) {
    std::size_t& a = at[std::size_t(((n * ho + p) * wo + q) * C + c)];
    const std::size_t here = std::size_t(((n * H + y) * W + xx) * C + c);
    if (a == std::size_t(-1) || x[here] > x[a]) a = here;
  });
  return at;
}

// The window geometry the window-family cases use: 5×5 images, 3×3 windows, stride 2, 'same'
// (one row and column of padding on each side): 3×3 outputs.
inline constexpr int win_n = 2, win_h = 5, win_w = 5, win_c = 2, win_k = 3, win_s = 2, win_o = 3;
constexpr window_geometry window_case_geometry() { return detail::geometry(win_h, win_w, win_k, win_k, win_s, padding::same); }
// conv2d cases: x [2,5,5,3], w [3,3,3,4], stride 2, 'same'.
inline constexpr int conv_c = 3, conv_f = 4;

inline std::vector<double> conv2d_reference(const std::vector<double>& x, const std::vector<double>& w) {
  std::vector<double> out(std::size_t(win_n * win_o * win_o * conv_f), 0.0);
  for_each_window_entry(win_n, win_h, win_w, conv_c, win_k, win_s, [&](int n, int p, int q, int i, int j, int c, int y, int xx) {
    for (int f = 0; f < conv_f; ++f)
      out[std::size_t(((n * win_o + p) * win_o + q) * conv_f + f)] +=
          x[std::size_t(((n * win_h + y) * win_w + xx) * conv_c + c)] * w[std::size_t(((i * win_k + j) * conv_c + c) * conv_f + f)];
  });
  return out;
}

inline double sigmoid_ref(double v) { return v >= 0 ? 1 / (1 + std::exp(-v)) : std::exp(v) / (1 + std::exp(v)); }

// splitmix64's finalizer, as documented for uniform_hash (ops/elementwise.hpp).
inline std::uint64_t splitmix_finalizer(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// minimum and maximum have a kink where a == b: keep b at least 0.1 from a.
inline void keep_operands_apart(values& x) {
  for (std::size_t i = 0; i < x[0].size(); ++i)
    if (std::fabs(x[0][i] - x[1][i]) < 0.1) x[1][i] = x[0][i] + (x[1][i] >= x[0][i] ? 0.1 : -0.1);
}

// ---- the registry ------------------------------------------------------------------------------------

// clang-format off
inline constexpr op_case cases[] = {
  // sources
  exempt(op::placeholder, "every case feeds its inputs through placeholders"),
  exempt(op::variable, "state, not a function of inputs: tests/test_minimize.cpp, tests/test_checkpoint.cpp, tests/test_optimizers.cpp"),
  make(op::constant, {}, [](graph& g, const tensor*) { return g.constant({0.5, -1.25, 2, 3.5, -4, 0.125}, f64, {2, 3}); }, {2, 3},
       [](const values&) { return std::vector<double>{0.5, -1.25, 2, 3.5, -4, 0.125}; }, no_gradient),
  make(op::scalar, {}, [](graph& g, const tensor*) { return g.scalar(-2.75, f64); }, {},
       [](const values&) { return std::vector<double>{-2.75}; }, no_gradient),
  make(op::iota, {}, [](graph& g, const tensor*) { return g.iota({2, 3}, f64, 1.5, -0.5); }, {2, 3},
       [](const values&) { std::vector<double> r(6); for (int i = 0; i < 6; ++i) r[std::size_t(i)] = 1.5 - 0.5 * i; return r; }, no_gradient),
  make(op::fill, {}, [](graph& g, const tensor*) { return g.fill({3, 2}, 4.25, f64); }, {3, 2},
       [](const values&) { return std::vector<double>(6, 4.25); }, no_gradient),

  // elementwise, unary
  make(op::neg, {in("x", {3, 5})}, [](graph&, const tensor* x) { return neg(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return -v; }); }, fd),
  make(op::abs, {in("x", {3, 5}, -3, 3, 0.1)}, [](graph&, const tensor* x) { return abs(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::fabs(v); }); }, fd),
  make(op::exp, {in("x", {3, 5}, -3, 3)}, [](graph&, const tensor* x) { return exp(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::exp(v); }); }, fd),
  make(op::log, {in("x", {3, 5}, 0.1, 4)}, [](graph&, const tensor* x) { return log(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::log(v); }); }, fd),
  make(op::sqrt, {in("x", {3, 5}, 0.1, 4)}, [](graph&, const tensor* x) { return sqrt(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::sqrt(v); }); }, fd),
  make(op::rsqrt, {in("x", {3, 5}, 0.1, 4)}, [](graph&, const tensor* x) { return rsqrt(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return 1 / std::sqrt(v); }); }, fd),
  make(op::square, {in("x", {3, 5}, -3, 3)}, [](graph&, const tensor* x) { return square(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return v * v; }); }, fd),
  make(op::tanh, {in("x", {3, 5}, -3, 3)}, [](graph&, const tensor* x) { return tanh(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::tanh(v); }); }, fd),
  make(op::sigmoid, {in("x", {3, 5}, -6, 6)}, [](graph&, const tensor* x) { return sigmoid(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, sigmoid_ref); }, fd),
  make(op::relu, {in("x", {3, 5}, -3, 3, 0.1)}, [](graph&, const tensor* x) { return relu(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return v > 0 ? v : 0.0; }); }, fd),
  make(op::softplus, {in("x", {3, 5}, -6, 6)}, [](graph&, const tensor* x) { return softplus(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::log(1 + std::exp(v)); }); }, fd),
  // tiny |x| included, where log(1 + x) would lose the digits log1p keeps
  make(op::log1p, {in("x", {3, 5}, -0.9, 4)}, [](graph&, const tensor* x) { return log1p(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return std::log1p(v); }); }, fd, f64,
       [](values& x) { x[0][0] = 1e-12; x[0][1] = -3e-10; }),
  // piecewise constant: the gradient check proves it contributes exactly nothing
  make(op::sign, {in("x", {3, 5}, -3, 3, 0.1)}, [](graph&, const tensor* x) { return sign(x[0]); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }); }, fd),
  make(op::logical_not, {typed_in("x", boolean, {3, 5}, 0, 1)}, [](graph&, const tensor* x) { return !x[0]; }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return v != 0 ? 0.0 : 1.0; }); }, no_gradient, boolean),
  // f64 -> f32 rounds: the difference quotient needs a step far above f32's resolution
  make(op::cast, {in("x", {3, 5})}, [](graph&, const tensor* x) { return cast(x[0], f32); }, {3, 5},
       [](const values& x) { return map1(x, [](double v) { return double(float(v)); }); }, {1e-4, 1e-2}, f32),

  // elementwise, binary
  make(op::add, {in("a", {3, 4}), in("b", {3, 4})}, [](graph&, const tensor* x) { return add(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return a + b; }); }, fd),
  make(op::sub, {in("a", {3, 4}), in("b", {3, 4})}, [](graph&, const tensor* x) { return sub(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return a - b; }); }, fd),
  make(op::mul, {in("a", {3, 4}), in("b", {3, 4})}, [](graph&, const tensor* x) { return mul(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return a * b; }); }, fd),
  make(op::div, {in("a", {3, 4}), in("b", {3, 4}, -2, 2, 0.5)}, [](graph&, const tensor* x) { return div(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return a / b; }); }, fd),
  make(op::pow, {in("a", {3, 4}, 0.5, 2), in("b", {3, 4})}, [](graph&, const tensor* x) { return pow(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return std::pow(a, b); }); }, fd),
  make(op::minimum, {in("a", {3, 4}), in("b", {3, 4})}, [](graph&, const tensor* x) { return minimum(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return std::min(a, b); }); }, fd, f64, keep_operands_apart),
  make(op::maximum, {in("a", {3, 4}), in("b", {3, 4})}, [](graph&, const tensor* x) { return maximum(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return std::max(a, b); }); }, fd, f64, keep_operands_apart),
  // comparisons on a coarse grid, so that equal operands occur
  make(op::less, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)}, [](graph&, const tensor* x) { return less(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return double(a < b); }); }, no_gradient, boolean),
  make(op::less_equal, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)}, [](graph&, const tensor* x) { return less_equal(x[0], x[1]); },
       {3, 4}, [](const values& x) { return map2(x, [](double a, double b) { return double(a <= b); }); }, no_gradient, boolean),
  make(op::greater, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)}, [](graph&, const tensor* x) { return greater(x[0], x[1]); },
       {3, 4}, [](const values& x) { return map2(x, [](double a, double b) { return double(a > b); }); }, no_gradient, boolean),
  make(op::greater_equal, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)},
       [](graph&, const tensor* x) { return greater_equal(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return double(a >= b); }); }, no_gradient, boolean),
  make(op::equal, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)}, [](graph&, const tensor* x) { return equal(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return double(a == b); }); }, no_gradient, boolean),
  make(op::not_equal, {grid_in("a", {3, 4}, 0.5), grid_in("b", {3, 4}, 0.5)}, [](graph&, const tensor* x) { return not_equal(x[0], x[1]); },
       {3, 4}, [](const values& x) { return map2(x, [](double a, double b) { return double(a != b); }); }, no_gradient, boolean),
  make(op::logical_and, {typed_in("a", boolean, {3, 4}, 0, 1), typed_in("b", boolean, {3, 4}, 0, 1)},
       [](graph&, const tensor* x) { return logical_and(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return double(a != 0 && b != 0); }); }, no_gradient, boolean),
  make(op::logical_or, {typed_in("a", boolean, {3, 4}, 0, 1), typed_in("b", boolean, {3, 4}, 0, 1)},
       [](graph&, const tensor* x) { return logical_or(x[0], x[1]); }, {3, 4},
       [](const values& x) { return map2(x, [](double a, double b) { return double(a != 0 || b != 0); }); }, no_gradient, boolean),
  // (2k + 1) / 2^24 from the top 23 bits of mix(mix(key) ^ index)
  make(op::uniform_hash, {typed_in("key", i32, {3, 4}, 0, 100), typed_in("index", i32, {3, 4}, 0, 100000)},
       [](graph&, const tensor* x) { return uniform_hash(x[0], x[1], f64); }, {3, 4},
       [](const values& x) {
         return map2(x, [](double k, double i) {
           const std::uint64_t h = splitmix_finalizer(splitmix_finalizer(std::uint64_t(std::int64_t(k))) ^ std::uint64_t(std::int64_t(i)));
           return (double(h >> 41) + 0.5) / 8388608.0;
         });
       }, no_gradient),
  make(op::select, {typed_in("cond", boolean, {3, 4}, 0, 1), in("a", {3, 4}), in("b", {3, 4})},
       [](graph&, const tensor* x) { return where(x[0], x[1], x[2]); }, {3, 4},
       [](const values& x) {
         std::vector<double> r(x[0].size());
         for (std::size_t i = 0; i < r.size(); ++i) r[i] = x[0][i] != 0 ? x[1][i] : x[2][i];
         return r;
       }, fd),

  // reductions over x [3,4,5]
  make(op::reduce_sum, {in("x", {3, 4, 5})}, [](graph&, const tensor* x) { return reduce_sum(x[0], axes{1}); }, {3, 5},
       [](const values& x) { return reduce_middle(x[0], 3, 4, 5, 0.0, [](double a, double v) { return a + v; }); }, fd),
  make(op::reduce_mean, {in("x", {3, 4, 5})}, [](graph&, const tensor* x) { return reduce_mean(x[0], axes{1, 2}); }, {3},
       [](const values& x) {
         std::vector<double> r = reduce_middle(x[0], 3, 20, 1, 0.0, [](double a, double v) { return a + v; });
         for (double& v : r) v /= 20;
         return r;
       }, fd),
  make(op::reduce_max, {in("x", {3, 4, 5})}, [](graph&, const tensor* x) { return reduce_max(x[0], axes{2}); }, {3, 4},
       [](const values& x) { return reduce_middle(x[0], 12, 5, 1, -INFINITY, [](double a, double v) { return std::max(a, v); }); }, fd),
  make(op::reduce_min, {in("x", {3, 4, 5})}, [](graph&, const tensor* x) { return reduce_min(x[0], axes{0}); }, {4, 5},
       [](const values& x) { return reduce_middle(x[0], 1, 3, 20, INFINITY, [](double a, double v) { return std::min(a, v); }); }, fd),
  // on a grid, so that ties occur: the first maximum wins
  make(op::argmax, {grid_in("x", {3, 4, 5}, 0.5)}, [](graph&, const tensor* x) { return argmax(x[0], -1); }, {3, 4},
       [](const values& x) {
         std::vector<double> r(12);
         for (std::size_t i = 0; i < 12; ++i) {
           std::size_t best = 0;
           for (std::size_t k = 1; k < 5; ++k) if (x[0][i * 5 + k] > x[0][i * 5 + best]) best = k;
           r[i] = double(best);
         }
         return r;
       }, no_gradient, i32),

  // dense algebra: a [3,4] · b [4,5]
  make(op::matmul, {in("a", {3, 4}), in("b", {4, 5})}, [](graph&, const tensor* x) { return matmul(x[0], x[1]); }, {3, 5},
       [](const values& x) {
         std::vector<double> r(15, 0.0);
         for (int i = 0; i < 3; ++i) for (int j = 0; j < 5; ++j) for (int k = 0; k < 4; ++k)
           r[std::size_t(i * 5 + j)] += x[0][std::size_t(i * 4 + k)] * x[1][std::size_t(k * 5 + j)];
         return r;
       }, fd),

  // aliases
  make(op::reshape, {in("x", {3, 4})}, [](graph&, const tensor* x) { return reshape(x[0], {2, 6}); }, {2, 6},
       [](const values& x) { return x[0]; }, fd),
  make(op::stop_gradient, {in("x", {3, 4})}, [](graph&, const tensor* x) { return stop_gradient(x[0]); }, {3, 4},
       [](const values& x) { return x[0]; }, no_gradient),  // identity forward, zero gradient: tests/test_gradients.cpp
  // a VJP consistent with the value, so that the finite differences agree with the custom rule
  make(op::custom_gradient, {in("x", {3, 4})},
       [](graph&, const tensor* x) {
         const tensor v = x[0];
         return custom_gradient(log(exp(v) + 1.0), {v}, [=](tensor dy) { return std::array{dy * sigmoid(v)}; });
       }, {3, 4}, [](const values& x) { return map1(x, [](double v) { return std::log(std::exp(v) + 1); }); }, fd),

  // copies
  make(op::transpose, {in("x", {2, 3, 4})}, [](graph&, const tensor* x) { return transpose(x[0], {2, 0, 1}); }, {4, 2, 3},
       [](const values& x) {
         std::vector<double> r(24);
         for (int i = 0; i < 2; ++i) for (int j = 0; j < 3; ++j) for (int k = 0; k < 4; ++k)
           r[std::size_t((k * 2 + i) * 3 + j)] = x[0][std::size_t((i * 3 + j) * 4 + k)];
         return r;
       }, fd),
  make(op::slice, {in("x", {4, 5})}, [](graph&, const tensor* x) { return slice(x[0], 1, 1, 4); }, {4, 3},
       [](const values& x) {
         std::vector<double> r;
         for (int i = 0; i < 4; ++i) for (int j = 1; j < 4; ++j) r.push_back(x[0][std::size_t(i * 5 + j)]);
         return r;
       }, fd),
  make(op::concat, {in("a", {2, 3}), in("b", {2, 1}), in("c", {2, 2})}, [](graph&, const tensor* x) { return concat({x[0], x[1], x[2]}, 1); },
       {2, 6},
       [](const values& x) {
         std::vector<double> r;
         for (int i = 0; i < 2; ++i) {
           for (int j = 0; j < 3; ++j) r.push_back(x[0][std::size_t(i * 3 + j)]);
           r.push_back(x[1][std::size_t(i)]);
           for (int j = 0; j < 2; ++j) r.push_back(x[2][std::size_t(i * 2 + j)]);
         }
         return r;
       }, fd),

  // indexing: rows of params [5,3] at indices [4] (repeats included)
  make(op::gather, {in("params", {5, 3}), typed_in("indices", i32, {4}, 0, 4)}, [](graph&, const tensor* x) { return gather(x[0], x[1]); },
       {4, 3},
       [](const values& x) {
         std::vector<double> r;
         for (double i : x[1]) for (int j = 0; j < 3; ++j) r.push_back(x[0][std::size_t(i) * 3 + std::size_t(j)]);
         return r;
       }, fd),

  // sliding windows over [2,5,5,2] images (window_case_geometry)
  make(op::im2col, {in("x", {win_n, win_h, win_w, win_c})},
       [](graph&, const tensor* x) { return detail::im2col(x[0], window_case_geometry()); }, {win_n, win_o * win_o, win_k * win_k * win_c},
       [](const values& x) {
         std::vector<double> r(std::size_t(win_n * win_o * win_o * win_k * win_k * win_c), 0.0);
         for_each_window_entry(win_n, win_h, win_w, win_c, win_k, win_s, [&](int n, int p, int q, int i, int j, int c, int y, int xx) {
           r[std::size_t(((n * win_o * win_o + p * win_o + q) * win_k * win_k + i * win_k + j) * win_c + c)] =
               x[0][std::size_t(((n * win_h + y) * win_w + xx) * win_c + c)];
         });
         return r;
       }, fd),
  make(op::col2im, {in("cols", {win_n, win_o * win_o, win_k * win_k * win_c})},
       [](graph&, const tensor* x) { return detail::col2im(x[0], shape{win_n, win_h, win_w, win_c}, window_case_geometry()); },
       {win_n, win_h, win_w, win_c},
       [](const values& x) {
         std::vector<double> r(std::size_t(win_n * win_h * win_w * win_c), 0.0);
         for_each_window_entry(win_n, win_h, win_w, win_c, win_k, win_s, [&](int n, int p, int q, int i, int j, int c, int y, int xx) {
           r[std::size_t(((n * win_h + y) * win_w + xx) * win_c + c)] +=
               x[0][std::size_t(((n * win_o * win_o + p * win_o + q) * win_k * win_k + i * win_k + j) * win_c + c)];
         });
         return r;
       }, fd),
  make(op::max_pool, {in("x", {win_n, win_h, win_w, win_c})},
       [](graph&, const tensor* x) { return detail::max_pool(x[0], window_case_geometry()); }, {win_n, win_o, win_o, win_c},
       [](const values& x) {
         std::vector<double> r;
         for (std::size_t at : max_positions(x[0], win_n, win_h, win_w, win_c, win_k, win_s)) r.push_back(x[0][at]);
         return r;
       }, fd),
  make(op::max_pool_grad, {in("x", {win_n, win_h, win_w, win_c}), in("g", {win_n, win_o, win_o, win_c})},
       [](graph&, const tensor* x) { return detail::max_pool_grad(x[0], x[1], window_case_geometry()); }, {win_n, win_h, win_w, win_c},
       [](const values& x) {
         std::vector<double> r(x[0].size(), 0.0);
         const auto at = max_positions(x[0], win_n, win_h, win_w, win_c, win_k, win_s);
         for (std::size_t o = 0; o < at.size(); ++o) r[at[o]] += x[1][o];
         return r;
       }, fd),
  make(op::max_pool_select, {in("x", {win_n, win_h, win_w, win_c}), in("g", {win_n, win_h, win_w, win_c})},
       [](graph&, const tensor* x) { return detail::max_pool_select(x[0], x[1], window_case_geometry()); }, {win_n, win_o, win_o, win_c},
       [](const values& x) {
         std::vector<double> r;
         for (std::size_t at : max_positions(x[0], win_n, win_h, win_w, win_c, win_k, win_s)) r.push_back(x[1][at]);
         return r;
       }, fd),

  // state
  exempt(op::assign, "writes a variable in place, no value of its own: tests/test_optimizers.cpp, tests/test_minimize.cpp"),

  // composites, checked through their lowering
  make(op::conv2d, {in("x", {win_n, win_h, win_w, conv_c}), in("w", {win_k, win_k, conv_c, conv_f})},
       [](graph&, const tensor* x) { return conv2d(x[0], x[1], win_s, padding::same); }, {win_n, win_o, win_o, conv_f},
       [](const values& x) { return conv2d_reference(x[0], x[1]); }, fd),
  // the adjoints of conv2d in x and in w: <conv2d(x, w), g> = <x, backprop_input(g, w)> = <w, backprop_filter(x, g)>
  make(op::conv2d_backprop_input, {in("g", {win_n, win_o, win_o, conv_f}), in("w", {win_k, win_k, conv_c, conv_f})},
       [](graph&, const tensor* x) {
         return detail::conv2d_backprop_input(x[0], x[1], shape{win_n, win_h, win_w, conv_c},
                                              detail::geometry(win_h, win_w, win_k, win_k, win_s, padding::same));
       }, {win_n, win_h, win_w, conv_c},
       [](const values& x) {
         std::vector<double> r(std::size_t(win_n * win_h * win_w * conv_c), 0.0);
         for_each_window_entry(win_n, win_h, win_w, conv_c, win_k, win_s, [&](int n, int p, int q, int i, int j, int c, int y, int xx) {
           for (int f = 0; f < conv_f; ++f)
             r[std::size_t(((n * win_h + y) * win_w + xx) * conv_c + c)] +=
                 x[0][std::size_t(((n * win_o + p) * win_o + q) * conv_f + f)] * x[1][std::size_t(((i * win_k + j) * conv_c + c) * conv_f + f)];
         });
         return r;
       }, fd),
  make(op::conv2d_backprop_filter, {in("x", {win_n, win_h, win_w, conv_c}), in("g", {win_n, win_o, win_o, conv_f})},
       [](graph&, const tensor* x) {
         return detail::conv2d_backprop_filter(x[0], x[1], shape{win_k, win_k, conv_c, conv_f},
                                               detail::geometry(win_h, win_w, win_k, win_k, win_s, padding::same));
       }, {win_k, win_k, conv_c, conv_f},
       [](const values& x) {
         std::vector<double> r(std::size_t(win_k * win_k * conv_c * conv_f), 0.0);
         for_each_window_entry(win_n, win_h, win_w, conv_c, win_k, win_s, [&](int n, int p, int q, int i, int j, int c, int y, int xx) {
           for (int f = 0; f < conv_f; ++f)
             r[std::size_t(((i * win_k + j) * conv_c + c) * conv_f + f)] +=
                 x[0][std::size_t(((n * win_h + y) * win_w + xx) * conv_c + c)] * x[1][std::size_t(((n * win_o + p) * win_o + q) * conv_f + f)];
         });
         return r;
       }, fd),
  // 'same' padding: a window averages only the entries inside the image
  make(op::avg_pool2d, {in("x", {win_n, win_h, win_w, win_c})},
       [](graph&, const tensor* x) { return avg_pool2d(x[0], win_k, win_s, padding::same); }, {win_n, win_o, win_o, win_c},
       [](const values& x) {
         std::vector<double> sum(std::size_t(win_n * win_o * win_o * win_c), 0.0), count(sum.size(), 0.0);
         for_each_window_entry(win_n, win_h, win_w, win_c, win_k, win_s, [&](int n, int p, int q, int, int, int c, int y, int xx) {
           const std::size_t o = std::size_t(((n * win_o + p) * win_o + q) * win_c + c);
           sum[o] += x[0][std::size_t(((n * win_h + y) * win_w + xx) * win_c + c)];
           count[o] += 1;
         });
         for (std::size_t o = 0; o < sum.size(); ++o) sum[o] /= count[o];
         return sum;
       }, fd),
  make(op::batch_norm, {in("x", {4, 3}), in("mean", {3}), in("variance", {3}, 0.5, 2), in("offset", {3}), in("scale", {3})},
       [](graph&, const tensor* x) { return batch_norm(x[0], x[1], x[2], x[3], x[4], 1e-3); }, {4, 3},
       [](const values& x) {
         std::vector<double> r(12);
         for (std::size_t i = 0; i < 4; ++i) for (std::size_t c = 0; c < 3; ++c)
           r[i * 3 + c] = (x[0][i * 3 + c] - x[1][c]) / std::sqrt(x[2][c] + 1e-3) * x[4][c] + x[3][c];
         return r;
       }, fd),
  make(op::softmax, {in("x", {3, 5}, -3, 3)}, [](graph&, const tensor* x) { return softmax(x[0], -1); }, {3, 5},
       [](const values& x) {
         std::vector<double> r(15);
         for (std::size_t i = 0; i < 3; ++i) {
           double z = 0;
           for (std::size_t j = 0; j < 5; ++j) z += std::exp(x[0][i * 5 + j]);
           for (std::size_t j = 0; j < 5; ++j) r[i * 5 + j] = std::exp(x[0][i * 5 + j]) / z;
         }
         return r;
       }, fd),
  make(op::log_softmax, {in("x", {3, 5}, -3, 3)}, [](graph&, const tensor* x) { return log_softmax(x[0], -1); }, {3, 5},
       [](const values& x) {
         std::vector<double> r(15);
         for (std::size_t i = 0; i < 3; ++i) {
           double z = 0;
           for (std::size_t j = 0; j < 5; ++j) z += std::exp(x[0][i * 5 + j]);
           for (std::size_t j = 0; j < 5; ++j) r[i * 5 + j] = x[0][i * 5 + j] - std::log(z);
         }
         return r;
       }, fd),
  make(op::fully_connected, {in("x", {3, 4}), in("w", {4, 5}), in("b", {5})},
       [](graph&, const tensor* x) { return fully_connected(x[0], x[1], x[2], epilogue_activation::tanh); }, {3, 5},
       [](const values& x) {
         std::vector<double> r(15);
         for (std::size_t i = 0; i < 3; ++i) for (std::size_t j = 0; j < 5; ++j) {
           double s = x[2][j];
           for (std::size_t k = 0; k < 4; ++k) s += x[0][i * 4 + k] * x[1][k * 5 + j];
           r[i * 5 + j] = std::tanh(s);
         }
         return r;
       }, fd),
};
// clang-format on

inline constexpr std::size_t case_count = sizeof(cases) / sizeof(cases[0]);

// ---- completeness, checked at compile time ---------------------------------------------------------

constexpr int entries_for(op o) {
  int n = 0;
  for (const op_case& c : cases) n += c.id == o;
  return n;
}

// Instantiated for every op of the table; a failure names the op in "covered<kiln::op::NAME>".
template <op O> struct covered {
  static_assert(entries_for(O) >= 1, "this op of graph/op_table.hpp has no test case and no exemption in tests/op_cases.hpp");
  static_assert(entries_for(O) <= 1, "this op has more than one entry in tests/op_cases.hpp");
  static constexpr bool value = true;
};
template <std::size_t... I> constexpr bool every_op_covered(std::index_sequence<I...>) { return (covered<op(I)>::value && ...); }
static_assert(every_op_covered(std::make_index_sequence<op_count>{}));

// Differentiable ops (a gradient rule, or the gradient of their lowering) declare a finite-difference
// tolerance; ops with no gradient at all cannot (their gradient is a graph error).
constexpr bool gradient_tolerances_match_the_table() {
  for (const op_case& c : cases) {
    if (!c.is_case()) continue;
    const grad_kind k = gradient_kind_of(c.id);
    if ((k == grad_kind::rule || k == grad_kind::decompose) && !(c.grad_tol > 0)) return false;
    if (k == grad_kind::none && c.grad_tol > 0) return false;
    if (c.n_inputs > max_case_inputs || (c.grad_tol > 0 && c.n_inputs == 0)) return false;
  }
  return true;
}
static_assert(gradient_tolerances_match_the_table(),
              "a differentiable op in tests/op_cases.hpp has no gradient tolerance, or an op without gradient declares one");

// The arity column agrees with the number of inputs a case feeds (concat: any count).
constexpr bool arities_match_the_table() {
  for (const op_case& c : cases)
    if (c.is_case() && arity_of(c.id) != variadic && c.n_inputs != arity_of(c.id)) return false;
  return true;
}
static_assert(arities_match_the_table(), "a case in tests/op_cases.hpp feeds a different number of inputs than its op's arity");

// ---- groups: one compiled model per group keeps the executors few -----------------------------------

enum class case_group : int { elementwise, structural, window, convolution, composite };
constexpr case_group group_of(op o) {
  switch (family_of(o)) {
    case op_family::source:
    case op_family::elementwise: return case_group::elementwise;
    case op_family::window: return case_group::window;
    case op_family::composite:
      return o == op::conv2d || o == op::conv2d_backprop_input || o == op::conv2d_backprop_filter ? case_group::convolution : case_group::composite;
    default: return case_group::structural;
  }
}

constexpr name_text joined(std::string_view a, std::string_view b, std::string_view c = {}, std::string_view d = {}) {
  name_text t;
  t.append(a).append(b).append(c).append(d);
  return t;
}
// Names the test feeds and reads: "<op>.<input>", "<op>" (the result), "y.<op>" (the objective of
// the gradient check) and "d_<op>.<input>" (its gradient in that input).
constexpr name_text input_name(const op_case& c, int k) { return joined(c.name(), ".", c.inputs[std::size_t(k)].name); }
constexpr name_text objective_name(const op_case& c) { return joined("y.", c.name()); }
constexpr name_text gradient_name(const op_case& c, int k) { return joined("d_", c.name(), ".", c.inputs[std::size_t(k)].name); }
constexpr bool differentiated(const op_case& c, int k) { return c.grad_tol > 0 && c.inputs[std::size_t(k)].type == dtype::f64; }

void the_case_builds_another_op_than_its_own();  // not constexpr: calling it stops compilation

// The SIMD pass: elementwise cases on f64 operands also run in f32 over a shape whose rows fill
// several packets and a partial one (the fused loops vectorize only f32, and only rows of at
// least one packet), with the f32 tolerance of the case.
inline constexpr shape simd_shape{5, 13};
constexpr bool runs_in_f32(const op_case& c) {
  if (!c.is_case() || family_of(c.id) != op_family::elementwise || c.out_type != dtype::f64 || c.n_inputs == 0) return false;
  for (int k = 0; k < c.n_inputs; ++k)
    if (c.inputs[std::size_t(k)].type != dtype::f64) return false;
  return true;
}

// Every case of group G in one graph: the result of each, and for cases with a gradient check a
// weighted sum y (a non-uniform upstream) and its gradients in every f64 input. With T = f32,
// the cases that run_in_f32, forward only. Without Gradients, the results only (the CUDA
// comparison: nvcc's constant evaluator needs several GB for the gradient graphs).
template <case_group G, dtype T = dtype::f64, bool Gradients = true> struct model {
  constexpr graph operator()() const {
    graph g;
    for (const op_case& c : cases) {
      if (!c.is_case() || group_of(c.id) != G || (T == dtype::f32 && !runs_in_f32(c))) continue;
      tensor ins[max_case_inputs];
      for (int k = 0; k < c.n_inputs; ++k) {
        const input_spec& s = c.inputs[std::size_t(k)];
        ins[k] = T == dtype::f32 ? g.placeholder(input_name(c, k).view(), T, simd_shape) : g.placeholder(input_name(c, k).view(), s.type, s.dims);
      }
      const tensor out = c.build(g, ins);
      if (out.info().kind != c.id) the_case_builds_another_op_than_its_own();
      g.output(c.name(), out);
      if (!(c.grad_tol > 0) || T != dtype::f64 || !Gradients) continue;
      const tensor weights = g.iota(out.shape(), dtype::f64, 0.5, 0.125);
      const tensor y = reduce_sum(cast(out, dtype::f64) * weights);
      g.output(objective_name(c).view(), y);
      tensor xs[max_case_inputs], ds[max_case_inputs];
      int n = 0;
      for (int k = 0; k < c.n_inputs; ++k)
        if (differentiated(c, k)) xs[n++] = ins[k];
      grad_detail::backward(y, xs, std::size_t(n), tensor{}, ds, detail::no_loc);
      n = 0;
      for (int k = 0; k < c.n_inputs; ++k)
        if (differentiated(c, k)) g.output(gradient_name(c, k).view(), ds[n++]);
    }
    return g;
  }
};

// ---- inputs ------------------------------------------------------------------------------------------

// Deterministic values of one case in its domain (a generator of its own, nothing of kiln's);
// `f32` draws them over simd_shape and rounds them to float.
inline values make_inputs(const op_case& c, std::uint64_t seed, bool f32 = false) {
  values v(std::size_t(c.n_inputs));
  for (int k = 0; k < c.n_inputs; ++k) {
    const input_spec& s = c.inputs[std::size_t(k)];
    const shape dims = f32 ? simd_shape : s.dims;
    std::int64_t n = 1;
    for (int d = 0; d < dims.rank; ++d) n *= dims.dim[d];
    std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + std::uint64_t(k + 1) * 0xbf58476d1ce4e5b9ull;
    for (std::int64_t i = 0; i < n; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const double u = double((state ^ (state >> 29)) >> 11) * (1.0 / 9007199254740992.0);
      double x = s.lo + (s.hi - s.lo) * u;
      if (s.type == dtype::boolean) x = u < 0.5 ? 0 : 1;
      else if (s.quantum > 0 || is_integer(s.type)) {
        const double q = s.quantum > 0 ? s.quantum : 1;
        x = std::min(std::floor(x / q + 0.5) * q, s.hi);
      }
      if (s.gap > 0 && std::fabs(x) < s.gap) x = x < 0 ? -s.gap - std::fabs(x) : s.gap + x;
      v[std::size_t(k)].push_back(x);
    }
  }
  if (c.adjust) c.adjust(v);
  if (f32)
    for (auto& x : v)
      for (double& e : x) e = double(float(e));
  return v;
}

}  // namespace op_cases
