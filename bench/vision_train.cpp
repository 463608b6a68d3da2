// Train-step throughput of the seed's vision models in kiln: the MNIST CNN
// (models::mnist_cnn_train: conv-pool-batchnorm x2, dense) at batch 64 and the 784-300-10 MLP
// (models::mlp_train: relu, softmax cross-entropy) at batch 100, both with Adam at Keras'
// defaults (lr 1e-3, betas .9/.999, eps 1e-7). The LibTorch peer with the
// same models, data, starting weights and optimizers is bench/vision_train_libtorch.cpp;
// tools/bench_vision.sh runs both and prints the ratios.
//
//   bench_vision_train [--model cnn|mlp|both] [--cnn-batch N] [--mlp-batch N] [--cnn-steps N]
//                      [--mlp-steps N] [--warmup N] [--rounds N] [--threads N]
//
// Method: every round starts from the same weights and optimizer state (a long run on a handful
// of fixed batches memorizes them and drives the softmax into saturation, which would time
// something a real run never sees), runs `warmup` steps, then times `steps` back-to-back steps;
// the figure is the median round. The steps cycle through 8 fixed synthetic batches (pixels
// uniform in [0, 1), labels uniform in 0..9). Losses of the first steps are printed so that
// tools/bench_vision.sh can check that both programs compute the same thing.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>
#include <oneapi/tbb/global_control.h>
#include <kiln.hpp>
#include "models/mlp.hpp"
#include "models/mnist_cnn.hpp"
#include "bench_util.hpp"
#include "roofline.hpp"

using namespace kiln;

namespace {

// ---- data and starting weights: computed the same way in bench/vision_train_libtorch.cpp ------

constexpr int n_batches = 8;
constexpr std::int64_t pixels = 28 * 28;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct batch_data {
  std::vector<float> images;  // [n, 28, 28, 1]
  std::vector<std::int32_t> labels;
};

batch_data make_batch(int which, std::int64_t n) {
  batch_data d{std::vector<float>(std::size_t(n * pixels)), std::vector<std::int32_t>(std::size_t(n))};
  const std::uint64_t base = std::uint64_t(which + 1) << 40;
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = float(splitmix64(base + i) >> 40) * 0x1p-24f;
  for (std::size_t i = 0; i < d.labels.size(); ++i) d.labels[i] = std::int32_t(splitmix64(~(base + i)) % 10);
  return d;
}

// Element i (row-major in kiln's layout: conv kernels HWIO, dense kernels [in, out]) of a kernel
// with the given fans: Glorot-uniform-sized, deterministic. Biases: small and nonzero, so that
// their gradients matter from the first step.
float kernel_value(std::int64_t i, std::int64_t fan_in, std::int64_t fan_out, double phase) {
  return float(std::sqrt(6.0 / double(fan_in + fan_out)) * std::sin(0.71 * double(i) + phase));
}
float bias_value(std::int64_t i, double phase) { return float(0.05 * std::sin(0.71 * double(i) + phase)); }

// ---- command line ---------------------------------------------------------------------------

struct options {
  std::string model = "both";
  std::int64_t cnn_batch = 64, mlp_batch = 100;
  int cnn_steps = 30, mlp_steps = 300, warmup = 5, rounds = 7, threads = 2;
};

template <class T> T parse_number(std::string_view flag, std::string_view text, T min) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < min)
    throw std::invalid_argument(std::string(flag) + " expects an integer >= " + std::to_string(min) + ", got '" + std::string(text) + "'");
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("unknown or incomplete argument '" + std::string(a) + "'");
    const std::string_view v = argv[++i];
    if (a == "--model") {
      if (v != "cnn" && v != "mlp" && v != "both") throw std::invalid_argument("--model expects cnn, mlp or both, got '" + std::string(v) + "'");
      o.model = v;
    } else if (a == "--cnn-batch") o.cnn_batch = parse_number<std::int64_t>(a, v, 1);
    else if (a == "--mlp-batch") o.mlp_batch = parse_number<std::int64_t>(a, v, 1);
    else if (a == "--cnn-steps") o.cnn_steps = parse_number<int>(a, v, 1);
    else if (a == "--mlp-steps") o.mlp_steps = parse_number<int>(a, v, 1);
    else if (a == "--warmup") o.warmup = parse_number<int>(a, v, 0);
    else if (a == "--rounds") o.rounds = parse_number<int>(a, v, 1);
    else if (a == "--threads") o.threads = parse_number<int>(a, v, 1);
    else throw std::invalid_argument("unknown argument '" + std::string(a) + "'");
  }
  return o;
}

// ---- models ---------------------------------------------------------------------------------

// Every variable of the store (weights, optimizer slots, step counter, moving statistics) as bytes.
class store_snapshot {
 public:
  explicit store_snapshot(variables& store) : store_(&store) {
    for (std::size_t i = 0; i < store.size(); ++i) {
      const auto& e = store[i];
      const auto* p = reinterpret_cast<const std::byte*>(e.data.data());
      saved_.emplace_back(p, p + std::size_t(e.shape.elements()) * size_of(e.type));
    }
  }
  void restore() const {
    for (std::size_t i = 0; i < store_->size(); ++i) std::memcpy((*store_)[i].data.data(), saved_[i].data(), saved_[i].size());
  }

 private:
  variables* store_;
  std::vector<std::vector<std::byte>> saved_;
};

struct parameter {
  const char* name;
  std::int64_t rows, cols;  // kernels: fan_in, fan_out; biases: cols == 0, rows = size
  double phase;
};
constexpr parameter cnn_parameters[] = {
    {"conv1/kernel", 2 * 2 * 1, 2 * 2 * 32, 0.3}, {"conv1/bias", 32, 0, 0.7}, {"conv2/kernel", 2 * 2 * 32, 2 * 2 * 32, 1.1},
    {"conv2/bias", 32, 0, 1.9},                   {"dense/kernel", 6 * 6 * 32, 10, 2.3}, {"dense/bias", 10, 0, 2.9},
};
constexpr parameter mlp_parameters[] = {
    {"hidden/kernel", 784, 300, 0.3}, {"hidden/bias", 300, 0, 0.7}, {"output/kernel", 300, 10, 1.1}, {"output/bias", 10, 0, 1.9}};

void fill(float* p, std::int64_t n, const parameter& q) {
  for (std::int64_t i = 0; i < n; ++i) p[i] = q.cols ? kernel_value(i, q.rows, q.cols, q.phase) : bias_value(i, q.phase);
}

template <class Ex, std::size_t N> void set_weights(Ex& ex, const parameter (&parameters)[N]) {
  for (const parameter& q : parameters) {
    auto v = ex.template variable<float>(q.name);
    fill(v.data(), v.size(), q);
  }
}

struct model_result {
  double seconds_per_step = 0;
  std::vector<double> losses;
};

constexpr int loss_steps = 20;  // losses of steps 0..19 from the starting weights

template <class Ex> model_result measure(Ex& ex, std::int64_t n, int steps, const options& o) {
  std::vector<batch_data> data;
  for (int b = 0; b < n_batches; ++b) data.push_back(make_batch(b, n));
  std::vector<std::vector<feed>> feeds;
  for (const batch_data& d : data) feeds.push_back({{"images", view(d.images, {n, 28, 28, 1})}, {"labels", view(d.labels, {n})}});
  auto step = [&](int i) { return ex.run(std::span<const feed>(feeds[std::size_t(i % n_batches)])).template get<float>("loss").item(); };

  const store_snapshot start(ex.vars());
  model_result r;
  for (int i = 0; i < loss_steps; ++i) r.losses.push_back(step(i));
  std::vector<double> per_step;
  for (int round = 0; round < o.rounds; ++round) {
    start.restore();
    for (int i = 0; i < o.warmup; ++i) bench::do_not_optimize(step(i));
    const auto t0 = bench::clock::now();
    for (int i = 0; i < steps; ++i) bench::do_not_optimize(step(o.warmup + i));
    per_step.push_back(bench::seconds_since(t0) / steps);
  }
  start.restore();
  r.seconds_per_step = bench::median(per_step);
  return r;
}

void report(const char* model, std::int64_t n, const model_result& r) {
  const std::string tag = "kiln_" + std::string(model) + "_batch" + std::to_string(n);
  bench::print((tag + "_images_per_second").c_str(), double(n) / r.seconds_per_step);
  bench::print((tag + "_ms_per_step").c_str(), r.seconds_per_step * 1e3);
  for (int s : {0, 1, 10, 19}) std::printf("kiln_%s_loss_step_%d: %.7g\n", model, s, r.losses[std::size_t(s)]);
}

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse(argc, argv);
  bench::print_machine();
  oneapi::tbb::global_control threads(oneapi::tbb::global_control::max_allowed_parallelism, std::size_t(o.threads));
  std::printf("threads_kiln: %d (oneTBB max_allowed_parallelism)\n", o.threads);
  std::printf("method: median over %d rounds (each from the starting weights, %d warm-up steps) of %d (cnn) / %d (mlp) timed steps\n", o.rounds,
              o.warmup, o.cnn_steps, o.mlp_steps);
  if (o.model != "mlp") {
    auto ex = compile<cpu>(models::mnist_cnn_train{});
    set_weights(ex, cnn_parameters);
    bench::print_plan_work<decltype(ex)::program_type>("kiln_cnn_batch" + std::to_string(o.cnn_batch), o.cnn_batch);
    report("cnn", o.cnn_batch, measure(ex, o.cnn_batch, o.cnn_steps, o));
  }
  if (o.model != "cnn") {
    auto ex = compile<cpu>(models::mlp_train{});
    set_weights(ex, mlp_parameters);
    bench::print_plan_work<decltype(ex)::program_type>("kiln_mlp_batch" + std::to_string(o.mlp_batch), o.mlp_batch);
    report("mlp", o.mlp_batch, measure(ex, o.mlp_batch, o.mlp_steps, o));
  }
  bench::print_capacity_at_end();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_vision_train: %s\n", e.what());
  return 2;
}
