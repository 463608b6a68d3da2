// Vision ops (nn/conv.hpp, nn/pool.hpp, nn/normalization.hpp, nn/dropout.hpp, nn/random.hpp):
// conv2d with valid and same padding, strides 1 to 3, C and F > 1, with and without bias; max and
// average pooling with stride == pool and other strides, valid and same; global pooling; batch
// norm in training (values and the moving averages after two steps) and inference; the random
// numbers (the documented hash, bit for bit), dropout and categorical sampling (statistics,
// reproducibility, gradients). Every value is checked against plain f64 loops written here from
// the TensorFlow / Keras definitions, at batch sizes 1 and 3.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include "nn/layers.hpp"
#include "test_util.hpp"

using namespace kiln;
using kt::check_values;

namespace {

// ---- references ------------------------------------------------------------------------------------

struct nhwc {
  std::int64_t n, h, w, c;
  std::int64_t at(std::int64_t b, std::int64_t i, std::int64_t j, std::int64_t k) const { return ((b * h + i) * w + j) * c + k; }
  std::int64_t size() const { return n * h * w * c; }
};

// TensorFlow's output size and leading padding of one axis.
struct axis_ref {
  std::int64_t out, before;
};
axis_ref tf_axis(std::int64_t n, std::int64_t k, std::int64_t s, bool same) {
  if (!same) return {(n - k) / s + 1, 0};
  const std::int64_t out = (n + s - 1) / s;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * s + k - n, 0);
  return {out, total / 2};
}

// y[b,p,q,f] = sum_{i,j,c} x[b, p*s + i - top, q*s + j - left, c] w[i,j,c,f], zero outside x.
std::vector<double> ref_conv(const std::vector<double>& x, nhwc xs, const std::vector<double>& w, std::int64_t kh, std::int64_t kw,
                             std::int64_t f, std::int64_t s, bool same, nhwc& ys) {
  const axis_ref ah = tf_axis(xs.h, kh, s, same), aw = tf_axis(xs.w, kw, s, same);
  ys = {xs.n, ah.out, aw.out, f};
  std::vector<double> y(std::size_t(ys.size()));
  for (std::int64_t b = 0; b < xs.n; ++b)
    for (std::int64_t p = 0; p < ah.out; ++p)
      for (std::int64_t q = 0; q < aw.out; ++q)
        for (std::int64_t o = 0; o < f; ++o) {
          double acc = 0;
          for (std::int64_t i = 0; i < kh; ++i)
            for (std::int64_t j = 0; j < kw; ++j)
              for (std::int64_t c = 0; c < xs.c; ++c) {
                const std::int64_t r = p * s + i - ah.before, col = q * s + j - aw.before;
                if (r < 0 || r >= xs.h || col < 0 || col >= xs.w) continue;
                acc += x[std::size_t(xs.at(b, r, col, c))] * w[std::size_t(((i * kw + j) * xs.c + c) * f + o)];
              }
          y[std::size_t(ys.at(b, p, q, o))] = acc;
        }
  return y;
}

// TF pooling: the window clipped to the image; max over it, or the mean of the entries inside.
std::vector<double> ref_pool(const std::vector<double>& x, nhwc xs, std::int64_t k, std::int64_t s, bool same, bool is_max, nhwc& ys) {
  const axis_ref ah = tf_axis(xs.h, k, s, same), aw = tf_axis(xs.w, k, s, same);
  ys = {xs.n, ah.out, aw.out, xs.c};
  std::vector<double> y(std::size_t(ys.size()));
  for (std::int64_t b = 0; b < xs.n; ++b)
    for (std::int64_t p = 0; p < ah.out; ++p)
      for (std::int64_t q = 0; q < aw.out; ++q)
        for (std::int64_t c = 0; c < xs.c; ++c) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int count = 0;
          for (std::int64_t i = 0; i < k; ++i)
            for (std::int64_t j = 0; j < k; ++j) {
              const std::int64_t r = p * s + i - ah.before, col = q * s + j - aw.before;
              if (r < 0 || r >= xs.h || col < 0 || col >= xs.w) continue;
              const double v = x[std::size_t(xs.at(b, r, col, c))];
              best = std::max(best, v);
              sum += v;
              ++count;
            }
          y[std::size_t(ys.at(b, p, q, c))] = is_max ? best : sum / count;
        }
  return y;
}

// A variable's storage as the read-only view the checks take.
template <class T> tensor_view<const T> ro(tensor_view<T> v) { return {v.data(), v.shape()}; }

// ---- conv2d ----------------------------------------------------------------------------------------

struct conv_case {
  const char* name;
  std::int64_t h, w, c, kh, kw, f, stride;
  bool same;
};
constexpr conv_case conv_cases[] = {
    {"a", 5, 6, 1, 2, 2, 1, 1, false},  // the seed's 2x2 kernel, one channel
    {"b", 5, 6, 3, 3, 2, 4, 1, true},   // non-square kernel, C > 1, F > 1, odd padding split
    {"c", 7, 7, 2, 3, 3, 3, 2, false},  // stride 2, the last window ends before the image does
    {"d", 7, 8, 2, 3, 3, 2, 2, true},   // stride 2, same
    {"e", 6, 6, 2, 2, 2, 3, 2, false},  // stride == kernel
    {"f", 8, 7, 3, 1, 1, 5, 1, true},   // 1x1
    {"g", 9, 9, 1, 4, 4, 2, 3, true},   // stride 3, an even kernel with same padding
    {"h", 4, 4, 2, 4, 4, 3, 1, false},  // the kernel covers the image: one output pixel
};
constexpr int n_conv = int(std::size(conv_cases));

template <dtype T> struct conv_model {
  constexpr graph operator()() const {
    graph g;
    for (const conv_case& k : conv_cases) {
      name_text xn("x_"), wn("w_"), yn("y_");
      xn.append(k.name);
      wn.append(k.name);
      yn.append(k.name);
      tensor x = g.placeholder(xn.view(), T, {batch, k.h, k.w, k.c});
      tensor w = g.placeholder(wn.view(), T, {k.kh, k.kw, k.c, k.f});
      g.output(yn.view(), conv2d(x, w, k.stride, k.same ? padding::same : padding::valid));
    }
    // with a bias, added in the matmul's epilogue (its own placeholders: "x_b" is case b's)
    tensor x = g.placeholder("x_bias", T, {batch, 5, 6, 3}), w = g.placeholder("w_bias", T, {3, 2, 3, 4});
    g.output("y_bias", conv2d(x, w, g.placeholder("bias", T, {4}), 1, padding::same));
    return g;
  }
};

template <dtype T> void check_conv(std::int64_t n) {
  using C = ctype<T>;
  static auto ex = compile<cpu>(conv_model<T>{});
  std::map<std::string, std::vector<C>> data;
  std::vector<feed> feeds;
  std::map<std::string, std::vector<double>> xs, ws;
  std::uint64_t seed = 10 * std::uint64_t(n);
  for (const conv_case& k : conv_cases) {
    const std::string x = std::string("x_") + k.name, w = std::string("w_") + k.name;
    xs[x] = kt::rounded<C>(kt::uniform<double>(std::size_t(n * k.h * k.w * k.c), -1, 1, ++seed));
    ws[w] = kt::rounded<C>(kt::uniform<double>(std::size_t(k.kh * k.kw * k.c * k.f), -1, 1, ++seed));
    data[x] = kt::as<C>(xs[x]);
    data[w] = kt::as<C>(ws[w]);
    // feed names are views: take them from the map's keys, which outlive the run
    feeds.push_back({data.find(x)->first, view(data[x], {n, k.h, k.w, k.c})});
    feeds.push_back({data.find(w)->first, view(data[w], {k.kh, k.kw, k.c, k.f})});
  }
  const std::vector<double> bias = {0.5, -1, 0.25, 2};
  xs["x_bias"] = kt::rounded<C>(kt::uniform<double>(std::size_t(n * 5 * 6 * 3), -1, 1, ++seed));
  ws["w_bias"] = kt::rounded<C>(kt::uniform<double>(std::size_t(3 * 2 * 3 * 4), -1, 1, ++seed));
  data["x_bias"] = kt::as<C>(xs["x_bias"]);
  data["w_bias"] = kt::as<C>(ws["w_bias"]);
  data["bias"] = kt::as<C>(bias);
  feeds.push_back({"x_bias", view(data["x_bias"], {n, 5, 6, 3})});
  feeds.push_back({"w_bias", view(data["w_bias"], {3, 2, 3, 4})});
  feeds.push_back({"bias", view(data["bias"], {4})});
  const auto& out = ex.run(std::span<const feed>(feeds));
  const double tol = T == f32 ? 1e-5 : 1e-12;
  for (const conv_case& k : conv_cases) {
    INFO("case " << std::string(k.name) << " batch " << n);
    nhwc ys{};
    auto want = ref_conv(xs[std::string("x_") + k.name], {n, k.h, k.w, k.c}, ws[std::string("w_") + k.name], k.kh, k.kw, k.f, k.stride,
                         k.same, ys);
    check_values(k.name, out.template get<C>(std::string("y_") + k.name), {ys.n, ys.h, ys.w, ys.c}, want, tol, tol);
  }
  nhwc ys{};
  auto want = ref_conv(xs["x_bias"], {n, 5, 6, 3}, ws["w_bias"], 3, 2, 4, 1, true, ys);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] += bias[i % 4];
  check_values("with bias", out.template get<C>("y_bias"), {n, 5, 6, 4}, want, tol, tol);
}

}  // namespace

TEST_CASE("vision.conv2d.valid_and_same.f32") {
  check_conv<f32>(1);
  check_conv<f32>(3);
}
TEST_CASE("vision.conv2d.valid_and_same.f64") {
  check_conv<f64>(3);
  check_conv<f64>(1);
}

TEST_CASE("vision.conv2d.output_shapes") {
  // TF's sizes: valid (n - k) / s + 1, same ceil(n / s)
  constexpr auto shapes = [] {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 28, 28, 1});
    tensor w = g.placeholder("w", f32, {2, 2, 1, 32});
    std::array<shape, 4> r{conv2d(x, w).shape(), conv2d(x, w, 1, padding::same).shape(), conv2d(x, w, 3).shape(),
                           conv2d(x, w, 3, padding::same).shape()};
    return r;
  }();
  CHECK(shapes[0] == shape{batch, 27, 27, 32});
  CHECK(shapes[1] == shape{batch, 28, 28, 32});
  CHECK(shapes[2] == shape{batch, 9, 9, 32});
  CHECK(shapes[3] == shape{batch, 10, 10, 32});
}

// ---- pooling ---------------------------------------------------------------------------------------

namespace {

struct pool_case {
  const char* name;
  std::int64_t k, stride;
  bool same;
};
constexpr pool_case pool_cases[] = {
    {"2", 2, 2, false},      // crops the odd row and column
    {"3same", 3, 3, true},   // pads (7 -> 9, 9 -> 9)
    {"3s2", 3, 2, false},    // overlapping windows
    {"2s1same", 2, 1, true}, // overlapping, padded at the end only
    {"3s2same", 3, 2, true},
};
constexpr std::int64_t PH = 7, PW = 9, PC = 3;

template <dtype T> struct pool_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, PH, PW, PC});
    for (const pool_case& k : pool_cases) {
      name_text mx("max_"), av("avg_");
      mx.append(k.name);
      av.append(k.name);
      const padding p = k.same ? padding::same : padding::valid;
      g.output(mx.view(), max_pool2d(x, k.k, k.stride, p));
      g.output(av.view(), avg_pool2d(x, k.k, k.stride, p));
    }
    g.output("gap", global_average_pooling(x));
    g.output("gmp", global_max_pooling(x));
    return g;
  }
};

template <dtype T> void check_pools(std::int64_t n) {
  using C = ctype<T>;
  static auto ex = compile<cpu>(pool_model<T>{});
  const nhwc xs{n, PH, PW, PC};
  const auto x = kt::rounded<C>(kt::uniform<double>(std::size_t(xs.size()), -3, 3, 77 + std::uint64_t(n)));
  const auto xc = kt::as<C>(x);
  const auto& out = ex.run({{"x", view(xc, {n, PH, PW, PC})}});
  const double tol = T == f32 ? 1e-6 : 1e-13;
  for (const pool_case& k : pool_cases) {
    INFO("pool " << std::string(k.name) << " batch " << n);
    for (bool is_max : {true, false}) {
      nhwc ys{};
      auto want = ref_pool(x, xs, k.k, k.stride, k.same, is_max, ys);
      check_values(is_max ? "max" : "avg", out.template get<C>(std::string(is_max ? "max_" : "avg_") + k.name), {ys.n, ys.h, ys.w, ys.c},
                   want, is_max ? 0 : tol, is_max ? 0 : tol);
    }
  }
  std::vector<double> gap(std::size_t(n * PC), 0), gmp(std::size_t(n * PC), -1e300);
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t i = 0; i < PH; ++i)
      for (std::int64_t j = 0; j < PW; ++j)
        for (std::int64_t c = 0; c < PC; ++c) {
          gap[std::size_t(b * PC + c)] += x[std::size_t(xs.at(b, i, j, c))] / double(PH * PW);
          gmp[std::size_t(b * PC + c)] = std::max(gmp[std::size_t(b * PC + c)], x[std::size_t(xs.at(b, i, j, c))]);
        }
  check_values("global average pooling", out.template get<C>("gap"), {n, PC}, gap, tol, tol);
  check_values("global max pooling", out.template get<C>("gmp"), {n, PC}, gmp);
}

}  // namespace

TEST_CASE("vision.pool.max_avg_global") {
  check_pools<f32>(3);
  check_pools<f32>(1);
}

// ---- batch normalization ----------------------------------------------------------------------------

namespace {

constexpr std::int64_t BH = 4, BW = 5, BC = 3, BF = 2;
constexpr double bn_momentum = 0.9, bn_epsilon = 1e-3;

template <bool Training> struct bn_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f64, {batch, BH, BW, BC});
    tensor v = g.placeholder("v", f64, {batch, BF});
    g.output("y", batch_norm(g, "bn", x, Training, bn_momentum, bn_epsilon));
    g.output("y2", batch_norm(g, "bn2d", v, Training, bn_momentum, bn_epsilon));
    return g;
  }
};

struct bn_ref {
  std::vector<double> mean, var;  // batch statistics, biased variance
};
bn_ref stats(const std::vector<double>& x, std::int64_t rows, std::int64_t ch) {
  bn_ref r{std::vector<double>(std::size_t(ch), 0), std::vector<double>(std::size_t(ch), 0)};
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t c = 0; c < ch; ++c) r.mean[std::size_t(c)] += x[std::size_t(i * ch + c)] / double(rows);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t c = 0; c < ch; ++c) {
      const double d = x[std::size_t(i * ch + c)] - r.mean[std::size_t(c)];
      r.var[std::size_t(c)] += d * d / double(rows);
    }
  return r;
}
std::vector<double> normalized(const std::vector<double>& x, std::int64_t ch, const std::vector<double>& mean, const std::vector<double>& var,
                               const std::vector<double>& gamma, const std::vector<double>& beta) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t c = i % std::size_t(ch);
    y[i] = (x[i] - mean[c]) / std::sqrt(var[c] + bn_epsilon) * gamma[c] + beta[c];
  }
  return y;
}

}  // namespace

TEST_CASE("vision.batch_norm.training_and_inference") {
  variables store;
  auto train = compile<cpu>(bn_model<true>{}, &store);
  auto infer = compile<cpu>(bn_model<false>{}, &store);
  // initial values: gamma 1, beta 0, moving mean 0, moving variance 1
  check_values("gamma", ro(train.variable<double>("bn/gamma")), {BC}, {1, 1, 1});
  check_values("moving variance", ro(train.variable<double>("bn/moving_variance")), {BC}, {1, 1, 1});
  CHECK_FALSE(store.at("bn/moving_mean").trainable);
  CHECK_FALSE(store.at("bn/moving_variance").trainable);
  CHECK(store.at("bn/gamma").trainable);
  CHECK(store.at("bn/beta").trainable);
  const std::vector<double> gamma = {1.5, 0.5, -2}, beta = {0.25, -1, 3};
  std::copy(gamma.begin(), gamma.end(), train.variable<double>("bn/gamma").flat().begin());
  std::copy(beta.begin(), beta.end(), train.variable<double>("bn/beta").flat().begin());
  const std::vector<double> one = {1, 1}, zero = {0, 0};

  std::vector<double> mm(BC, 0), mv(BC, 1), mm2(BF, 0), mv2(BF, 1);  // the reference moving statistics
  std::int64_t step = 0;
  for (std::int64_t n : {3, 2}) {
    INFO("train step " << step << ", batch " << n);
    // channels with different means and scales, so a mix-up of axes shows
    auto x = kt::uniform<double>(std::size_t(n * BH * BW * BC), -1, 1, 5 + std::uint64_t(step));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = x[i] * double(1 + i % BC) + 3.0 * double(i % BC);
    auto v = kt::uniform<double>(std::size_t(n * BF), -2, 2, 9 + std::uint64_t(step));
    const auto& out = train.run({{"x", view(x, {n, BH, BW, BC})}, {"v", view(v, {n, BF})}});
    const bn_ref s = stats(x, n * BH * BW, BC), s2 = stats(v, n, BF);
    check_values("y (batch statistics)", out.get<double>("y"), {n, BH, BW, BC}, normalized(x, BC, s.mean, s.var, gamma, beta), 1e-12, 1e-12);
    check_values("y2 (batch statistics)", out.get<double>("y2"), {n, BF}, normalized(v, BF, s2.mean, s2.var, one, zero), 1e-12, 1e-12);
    // moving = momentum * moving + (1 - momentum) * batch statistic; 4-D: unbiased variance
    const double rows = double(n * BH * BW);
    for (std::int64_t c = 0; c < BC; ++c) {
      mm[std::size_t(c)] = bn_momentum * mm[std::size_t(c)] + (1 - bn_momentum) * s.mean[std::size_t(c)];
      mv[std::size_t(c)] = bn_momentum * mv[std::size_t(c)] + (1 - bn_momentum) * s.var[std::size_t(c)] * rows / (rows - 1);
    }
    for (std::int64_t c = 0; c < BF; ++c) {
      mm2[std::size_t(c)] = bn_momentum * mm2[std::size_t(c)] + (1 - bn_momentum) * s2.mean[std::size_t(c)];
      mv2[std::size_t(c)] = bn_momentum * mv2[std::size_t(c)] + (1 - bn_momentum) * s2.var[std::size_t(c)];  // 2-D: biased
    }
    check_values("moving mean", ro(train.variable<double>("bn/moving_mean")), {BC}, mm, 1e-13, 1e-13);
    check_values("moving variance", ro(train.variable<double>("bn/moving_variance")), {BC}, mv, 1e-13, 1e-13);
    check_values("2-D moving mean", ro(train.variable<double>("bn2d/moving_mean")), {BF}, mm2, 1e-13, 1e-13);
    check_values("2-D moving variance", ro(train.variable<double>("bn2d/moving_variance")), {BF}, mv2, 1e-13, 1e-13);
    ++step;
  }
  // inference: the moving statistics, and nothing is updated
  auto x = kt::uniform<double>(std::size_t(2 * BH * BW * BC), -1, 1, 99);
  auto v = kt::uniform<double>(std::size_t(2 * BF), -1, 1, 98);
  for (int rep = 0; rep < 2; ++rep) {
    const auto& out = infer.run({{"x", view(x, {2, BH, BW, BC})}, {"v", view(v, {2, BF})}});
    check_values("inference y", out.get<double>("y"), {2, BH, BW, BC}, normalized(x, BC, mm, mv, gamma, beta), 1e-12, 1e-12);
    check_values("inference y2", out.get<double>("y2"), {2, BF}, normalized(v, BF, mm2, mv2, one, zero), 1e-12, 1e-12);
  }
  check_values("moving mean unchanged by inference", ro(train.variable<double>("bn/moving_mean")), {BC}, mm, 1e-13, 1e-13);
}

// ---- random numbers -------------------------------------------------------------------------------

namespace {

// The documented stream, written out independently: splitmix64's finalizer, key = counter +
// the seed's offset ((mix(seed) >> 33) << 32), u = ((h >> 41) + 0.5) / 2^23 with
// h = mix(mix(key) ^ index).
std::uint64_t splitmix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
double ref_uniform(std::uint64_t seed, std::uint64_t counter, std::uint64_t index) {
  const std::uint64_t key = ((splitmix(seed) >> 33) << 32) + counter;
  const std::uint64_t h = splitmix(splitmix(key) ^ index);
  return (double(h >> 41) + 0.5) / 8388608.0;
}

constexpr std::uint64_t rng_seed = 1234;

struct random_model {
  constexpr graph operator()() const {
    graph g;
    tensor counter = random_counter(g, "rng/counter");
    g.output("u32", random_uniform(g, {50, 1000}, rng_seed, counter, f32));
    g.output("u64", random_uniform(g, {50, 1000}, rng_seed, counter, f64));
    g.output("other_seed", random_uniform(g, {50, 1000}, rng_seed + 1, counter, f64));
    // (a fetched variable is its storage, read after the run's increment; counter + 0 is the
    // value this run read)
    g.output("counter", counter + std::int64_t(0));
    return g;
  }
};

}  // namespace

TEST_CASE("vision.random.uniform_matches_the_documented_hash") {
  auto ex = compile<cpu>(random_model{});
  const std::int64_t n = 50;
  for (std::uint64_t run = 0; run < 3; ++run) {
    INFO("run " << run);
    const auto& out = ex.run();
    CHECK(out.get<std::int64_t>("counter").flat()[0] == std::int64_t(run));  // read before the increment
    std::vector<double> want(std::size_t(n * 1000));
    for (std::size_t i = 0; i < want.size(); ++i) want[i] = ref_uniform(rng_seed, run, i);
    check_values("f64 stream", out.get<double>("u64"), {n, 1000}, want);
    check_values("f32 stream: the same values", out.get<float>("u32"), {n, 1000}, want);
    double sum = 0, sq = 0, lo = 1, hi = 0;
    std::int64_t same_as_other = 0;
    auto u = out.get<double>("u64").flat();
    auto o = out.get<double>("other_seed").flat();
    for (std::size_t i = 0; i < want.size(); ++i) {
      sum += u[i];
      sq += u[i] * u[i];
      lo = std::min(lo, u[i]);
      hi = std::max(hi, u[i]);
      same_as_other += u[i] == o[i];
    }
    const double count = double(want.size()), mean = sum / count, var = sq / count - mean * mean;
    CHECK(lo > 0);
    CHECK(hi < 1);
    CHECK(std::fabs(mean - 0.5) < 0.005);  // sd of the mean: 0.0013
    CHECK(std::fabs(var - 1.0 / 12) < 0.003);
    CHECK(same_as_other < 20);
  }
}

// ---- dropout --------------------------------------------------------------------------------------

namespace {

constexpr double drop_rate = 0.3;

template <std::uint64_t Seed, bool Training> struct dropout_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 512});
    tensor y = dropout(g, "drop", x, drop_rate, Training, Seed);
    g.output("y", y);
    g.output("dx", gradient(reduce_sum(y * 2.0), x));
    g.output("zero_rate", dropout(g, "drop0", x, 0.0, Training, Seed) * 1.0);
    return g;
  }
};

struct mask_stats {
  std::vector<bool> kept;
  double kept_fraction = 0;
};

}  // namespace

TEST_CASE("vision.dropout.training") {
  auto ex = compile<cpu>(dropout_model<7, true>{});
  const std::int64_t n = 128;  // 65536 elements
  const auto x = kt::as<float>(kt::uniform<double>(std::size_t(n * 512), 0.5, 2, 3));  // never 0: kept <=> y != 0
  const float scale = float(1 / (1 - drop_rate));
  std::vector<mask_stats> runs;
  for (int run = 0; run < 2; ++run) {
    const auto& out = ex.run({{"x", view(x, {n, 512})}});
    auto y = out.get<float>("y").flat();
    auto dx = out.get<float>("dx").flat();
    mask_stats m;
    std::size_t bad_values = 0, bad_grads = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const bool kept = y[i] != 0;
      m.kept.push_back(kept);
      m.kept_fraction += kept;
      if (kept && y[i] != x[i] * scale) ++bad_values;
      if (dx[i] != (kept ? 2 * scale : 0.0f)) ++bad_grads;  // d/dx sum(2 y) = 2 * mask / (1 - rate)
    }
    m.kept_fraction /= double(x.size());
    CHECK_MESSAGE(bad_values == 0, bad_values << " kept values are not x / (1 - rate)");
    CHECK_MESSAGE(bad_grads == 0, bad_grads << " gradients differ from 2 * mask / (1 - rate)");
    CHECK(std::fabs(m.kept_fraction - (1 - drop_rate)) < 0.01);  // sd 0.0018
    check_values("rate 0 is the identity", out.get<float>("zero_rate"), {n, 512}, kt::as_double(x));
    runs.push_back(m);
  }
  // a new mask each run: two independent masks agree on ~0.7^2 + 0.3^2 = 58% of the elements
  std::size_t agree = 0;
  for (std::size_t i = 0; i < x.size(); ++i) agree += runs[0].kept[i] == runs[1].kept[i];
  CHECK(double(agree) / double(x.size()) < 0.62);
  CHECK(ex.variable<std::int64_t>("drop/counter").flat()[0] == 2);

  // the same seed and counter give the same mask (a fresh store restarts the counter at 0) ...
  auto again = compile<cpu>(dropout_model<7, true>{});
  auto y0 = again.run({{"x", view(x, {n, 512})}}).get<float>("y").flat();
  std::size_t same = 0;
  for (std::size_t i = 0; i < x.size(); ++i) same += (y0[i] != 0) == runs[0].kept[i];
  CHECK(same == x.size());
  // ... and another seed gives another one
  auto other = compile<cpu>(dropout_model<8, true>{});
  auto y1 = other.run({{"x", view(x, {n, 512})}}).get<float>("y").flat();
  std::size_t same_other = 0;
  for (std::size_t i = 0; i < x.size(); ++i) same_other += (y1[i] != 0) == runs[0].kept[i];
  CHECK(double(same_other) / double(x.size()) < 0.62);
}

TEST_CASE("vision.dropout.inference_is_identity") {
  auto ex = compile<cpu>(dropout_model<7, false>{});
  const auto x = kt::as<float>(kt::uniform<double>(std::size_t(4 * 512), -2, 2, 4));
  const auto& out = ex.run({{"x", view(x, {4, 512})}});
  check_values("y", out.get<float>("y"), {4, 512}, kt::as_double(x));
  check_values("dx", out.get<float>("dx"), {4, 512}, std::vector<double>(x.size(), 2.0));
  CHECK(ex.vars().find("drop/counter") == nullptr);  // no random state in an inference graph
}

// ---- categorical sampling ---------------------------------------------------------------------------

namespace {

constexpr std::int64_t n_classes = 5;

struct sample_model {
  constexpr graph operator()() const {
    graph g;
    tensor logits = g.placeholder("logits", f32, {batch, n_classes});
    g.output("sample", categorical_sample(logits, 99, random_counter(g, "policy/counter")));
    return g;
  }
};

}  // namespace

TEST_CASE("vision.random.categorical_sample_frequencies") {
  auto ex = compile<cpu>(sample_model{});
  const std::int64_t n = 40000;
  // a masked class (-inf) must never be drawn
  const std::vector<double> row = {0.5, -1.0, 2.0, -std::numeric_limits<double>::infinity(), 1.0};
  std::vector<float> logits;
  for (std::int64_t i = 0; i < n; ++i)
    for (double v : row) logits.push_back(float(v));
  double z = 0;
  for (double v : row) z += std::exp(v);
  std::vector<std::int32_t> first;
  for (int run = 0; run < 2; ++run) {
    INFO("run " << run);
    const auto& out = ex.run({{"logits", view(logits, {n, n_classes})}});
    auto s = out.get<std::int32_t>("sample");
    REQUIRE(s.shape() == dims{n});
    std::vector<double> count(n_classes, 0);
    std::int64_t out_of_range = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t k = s.flat()[std::size_t(i)];
      if (k < 0 || k >= n_classes) ++out_of_range;
      else count[std::size_t(k)] += 1;
    }
    REQUIRE(out_of_range == 0);
    CHECK(count[3] == 0);
    // Pearson's chi-square over the 4 possible classes (3 degrees of freedom): P(> 20) = 1.7e-4
    double chi2 = 0;
    for (std::int64_t k = 0; k < n_classes; ++k) {
      if (k == 3) continue;
      const double expected = double(n) * std::exp(row[std::size_t(k)]) / z;
      chi2 += (count[std::size_t(k)] - expected) * (count[std::size_t(k)] - expected) / expected;
    }
    CHECK_MESSAGE(chi2 < 20, "chi-square " << chi2);
    if (run == 0) first.assign(s.flat().begin(), s.flat().end());
    else {
      std::int64_t same = 0;
      for (std::int64_t i = 0; i < n; ++i) same += first[std::size_t(i)] == s.flat()[std::size_t(i)];
      CHECK(double(same) / double(n) < 0.6);  // a new draw each run (identical draws: ~41%)
    }
  }
}

// ---- graph errors -----------------------------------------------------------------------------------

namespace {

template <class Build> std::string error_of(Build build) {
  graph g;
  build(g);
  return std::string(g.error.view());
}

void check_error(const std::string& got, const std::string& want_prefix) {
  INFO("error: " << got);
  CHECK(got.starts_with(want_prefix));
  CHECK(got.find("(at test_vision_ops.cpp:") != std::string::npos);
}

}  // namespace

TEST_CASE("vision.errors") {
  check_error(error_of([](graph& g) { conv2d(g.placeholder("x", f32, {batch, 8, 8}), g.placeholder("w", f32, {2, 2, 1, 4})); }),
              "conv2d: expects x [batch,H,W,C] and w [KH,KW,C,F], got x [?,8,8] and w [2,2,1,4]");
  check_error(error_of([](graph& g) { conv2d(g.placeholder("x", f32, {batch, 8, 8, 3}), g.placeholder("w", f32, {2, 2, 1, 4})); }),
              "conv2d: x [?,8,8,3] has 3 channels but w [2,2,1,4] expects 1");
  check_error(error_of([](graph& g) { conv2d(g.placeholder("x", f32, {batch, 8, 8, 1}), g.placeholder("w", f64, {2, 2, 1, 4})); }),
              "conv2d: x and w must share a floating dtype, got f32 [?,8,8,1] and f64 [2,2,1,4]");
  check_error(error_of([](graph& g) { conv2d(g.placeholder("x", f32, {batch, 3, 8, 1}), g.placeholder("w", f32, {4, 2, 1, 4})); }),
              "conv2d: the kernel of w [4,2,1,4] is larger than the image of x [?,3,8,1] with padding::valid");
  check_error(error_of([](graph& g) { conv2d(g.placeholder("x", f32, {batch, 8, 8, 1}), g.placeholder("w", f32, {2, 2, 1, 4}), 0); }),
              "conv2d: stride must be >= 1, got 0");
  check_error(error_of([](graph& g) {
                conv2d(g.placeholder("x", f32, {batch, 8, 8, 1}), g.placeholder("w", f32, {2, 2, 1, 4}), g.placeholder("b", f32, {3}));
              }),
              "conv2d: bias must be f32 [4] for w [2,2,1,4], got f32 [3]");
  check_error(error_of([](graph& g) { max_pool2d(g.placeholder("x", f32, {batch, 8, 8}), 2); }), "max_pool2d: expects x [batch,H,W,C], got f32 [?,8,8]");
  check_error(error_of([](graph& g) { avg_pool2d(g.placeholder("x", f32, {batch, 2, 8, 1}), 3); }),
              "avg_pool2d: the pool window 3x3 is larger than the image of x [?,2,8,1] with padding::valid");
  check_error(error_of([](graph& g) { max_pool2d(g.placeholder("x", i32, {batch, 8, 8, 1}), 2); }), "max_pool2d: expects f32 or f64, got i32 [?,8,8,1]");
  check_error(error_of([](graph& g) { global_average_pooling(g.placeholder("x", f32, {batch, 8})); }),
              "global_average_pooling: expects f32 or f64 x [batch,H,W,C], got f32 [?,8]");
  check_error(error_of([](graph& g) { batch_norm(g, "bn", g.placeholder("x", f32, {batch}), true); }),
              "batch_norm: 'bn': expects f32 or f64 x of rank >= 2 with static channels last, got f32 [?]");
  check_error(error_of([](graph& g) {
                batch_norm(g, "a_very_long_layer_name_that_goes_on_and_on_and_on", g.placeholder("x", f32, {batch, 4}), true);
              }),
              "batch_norm: 'a_very_long_layer_name_that_goes_on_and_on_and_on' is too long");
  check_error(error_of([](graph& g) { dropout(g, "d", g.placeholder("x", f32, {batch, 4}), 1.0, true); }),
              "dropout: 'd': rate must lie in [0, 1) for x [?,4]");
  check_error(error_of([](graph& g) { dropout(g, "d", g.placeholder("x", i32, {batch, 4}), 0.5, true); }),
              "dropout: 'd': expects f32 or f64 x, got i32 [?,4]");
  check_error(error_of([](graph& g) { random_uniform(g, {4}, 1, g.placeholder("c", f32, {})); }),
              "random_uniform: the counter must be an i32 or i64 scalar, got f32 []");
  check_error(error_of([](graph& g) { categorical_sample(g.placeholder("l", i32, {batch, 3}), 1, random_counter(g, "c")); }),
              "categorical_sample: expects f32 or f64 logits [..., classes], got i32 [?,3]");
  check_error(error_of([](graph& g) { uniform_hash(g.placeholder("k", f32, {}), g.iota({4}, i64)); }),
              "uniform_hash: key and index must be i32 or i64, got f32 [] and i64 [4]");
}
