// The LibTorch peer of bench/vision_train.cpp: train-step throughput of the seed's MNIST CNN at
// batch 64 and of the 784-300-10 MLP at batch 100, written as a LibTorch user writes them
// (torch::nn modules, functional cross-entropy, zero_grad(); backward(); step()), with the same
// synthetic batches, the same starting weights (the same formulas, mapped to PyTorch's layouts)
// and the same optimizers:
//   CNN: Conv2d(1, 32, 2) relu, MaxPool2d(2), BatchNorm2d(eps 1e-3, momentum 0.01: Keras' 0.99),
//        Conv2d(32, 32, 2) relu, MaxPool2d(2), BatchNorm2d, Flatten, Linear(32*6*6, 10);
//        Adam(lr 1e-3, betas .9/.999, eps 1e-7). PyTorch applies eps to sqrt(v / (1 - beta2^t)),
//        Keras after folding the bias corrections into the step size; with eps 1e-7 the losses
//        agree far inside the tolerance tools/bench_vision.sh checks, and the cost is the same.
//   MLP: Linear(784, 300) relu, Linear(300, 10); the same Adam.
// kiln's images are NHWC; they are permuted to NCHW once, outside the timed loop.
//
//   bench_vision_train_libtorch [same flags as bench_vision_train]
//
// Threads: torch::set_num_threads(--threads, default 2): the intra-op OpenMP pool, which also
// runs OpenBLAS (Debian's libopenblas0-openmp) and oneDNN.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>
#include <torch/version.h>
#include "bench_util.hpp"
#include "peer_config.hpp"

namespace {

// ---- data and starting weights: computed the same way in bench/vision_train.cpp -------------

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

float kernel_value(std::int64_t i, std::int64_t fan_in, std::int64_t fan_out, double phase) {
  return float(std::sqrt(6.0 / double(fan_in + fan_out)) * std::sin(0.71 * double(i) + phase));
}
float bias_value(std::int64_t i, double phase) { return float(0.05 * std::sin(0.71 * double(i) + phase)); }

// A kernel in kiln's layout (conv HWIO, dense [in, out]) of the given shape, or a bias.
torch::Tensor kernel(std::vector<std::int64_t> shape, std::int64_t fan_in, std::int64_t fan_out, double phase) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) p[i] = kernel_value(i, fan_in, fan_out, phase);
  return t;
}
torch::Tensor bias(std::int64_t n, double phase) {
  torch::Tensor t = torch::empty({n}, torch::kFloat32);
  for (std::int64_t i = 0; i < n; ++i) t.data_ptr<float>()[i] = bias_value(i, phase);
  return t;
}

// ---- command line (as bench/vision_train.cpp) ------------------------------------------------

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

namespace nn = torch::nn;

struct CnnImpl : nn::Module {
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Linear dense{nullptr};
  CnnImpl()
      : conv1(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 2)))),
        conv2(register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 32, 2)))),
        bn1(register_module("bn1", nn::BatchNorm2d(nn::BatchNorm2dOptions(32).eps(1e-3).momentum(0.01)))),
        bn2(register_module("bn2", nn::BatchNorm2d(nn::BatchNorm2dOptions(32).eps(1e-3).momentum(0.01)))),
        dense(register_module("dense", nn::Linear(32 * 6 * 6, 10))) {}
  torch::Tensor forward(torch::Tensor x) {
    x = bn1(torch::max_pool2d(torch::relu(conv1(x)), 2));
    x = bn2(torch::max_pool2d(torch::relu(conv2(x)), 2));
    return dense(x.flatten(1));
  }
  // kiln's starting weights: HWIO kernels -> OIHW; the dense kernel's rows are kiln's NHWC
  // flatten order (h, w, c), PyTorch's columns the NCHW one (c, h, w).
  void set_weights() {
    torch::NoGradGuard no_grad;
    conv1->weight.copy_(kernel({2, 2, 1, 32}, 2 * 2 * 1, 2 * 2 * 32, 0.3).permute({3, 2, 0, 1}));
    conv1->bias.copy_(bias(32, 0.7));
    conv2->weight.copy_(kernel({2, 2, 32, 32}, 2 * 2 * 32, 2 * 2 * 32, 1.1).permute({3, 2, 0, 1}));
    conv2->bias.copy_(bias(32, 1.9));
    dense->weight.copy_(kernel({6, 6, 32, 10}, 6 * 6 * 32, 10, 2.3).permute({3, 2, 0, 1}).reshape({10, 32 * 6 * 6}));
    dense->bias.copy_(bias(10, 2.9));
  }
};
TORCH_MODULE(Cnn);

struct MlpImpl : nn::Module {
  nn::Linear hidden{nullptr}, output{nullptr};
  MlpImpl() : hidden(register_module("hidden", nn::Linear(784, 300))), output(register_module("output", nn::Linear(300, 10))) {}
  torch::Tensor forward(torch::Tensor x) { return output(torch::relu(hidden(x))); }
  void set_weights() {
    torch::NoGradGuard no_grad;
    hidden->weight.copy_(kernel({784, 300}, 784, 300, 0.3).t());
    hidden->bias.copy_(bias(300, 0.7));
    output->weight.copy_(kernel({300, 10}, 300, 10, 1.1).t());
    output->bias.copy_(bias(10, 1.9));
  }
};
TORCH_MODULE(Mlp);

// Keras' defaults, as kiln's adam{}.
torch::optim::AdamOptions adam_options() { return torch::optim::AdamOptions(1e-3).betas({0.9, 0.999}).eps(1e-7); }

// A model with its optimizer, restarted from the starting weights by reset().
struct cnn_trainer {
  Cnn net{nullptr};
  std::unique_ptr<torch::optim::Adam> opt;
  void reset() {
    net = Cnn();
    net->set_weights();
    net->train();
    opt = std::make_unique<torch::optim::Adam>(net->parameters(), adam_options());
  }
  // images NHWC -> NCHW: once per batch, before any timing (clone first: with one channel the
  // permuted view already counts as contiguous and would keep pointing at d).
  static torch::Tensor input(const batch_data& d, std::int64_t n) {
    return torch::from_blob(const_cast<float*>(d.images.data()), {n, 28, 28, 1}, torch::kFloat32).clone().permute({0, 3, 1, 2}).contiguous();
  }
};
struct mlp_trainer {
  Mlp net{nullptr};
  std::unique_ptr<torch::optim::Adam> opt;
  void reset() {
    net = Mlp();
    net->set_weights();
    net->train();
    opt = std::make_unique<torch::optim::Adam>(net->parameters(), adam_options());
  }
  static torch::Tensor input(const batch_data& d, std::int64_t n) {
    return torch::from_blob(const_cast<float*>(d.images.data()), {n, 784}, torch::kFloat32).clone();
  }
};

struct model_result {
  double seconds_per_step = 0;
  std::vector<double> losses;
};

constexpr int loss_steps = 20;

template <class Trainer> model_result measure(std::int64_t n, int steps, const options& o) {
  std::vector<torch::Tensor> images, labels;
  for (int b = 0; b < n_batches; ++b) {
    const batch_data d = make_batch(b, n);
    images.push_back(Trainer::input(d, n));
    labels.push_back(torch::from_blob(const_cast<std::int32_t*>(d.labels.data()), {n}, torch::kInt32).to(torch::kInt64));
  }
  Trainer t;
  auto step = [&](int i) -> torch::Tensor {
    const auto b = std::size_t(i % n_batches);
    torch::Tensor loss = torch::nn::functional::cross_entropy(t.net->forward(images[b]), labels[b]);
    t.opt->zero_grad();
    loss.backward();
    t.opt->step();
    return loss;
  };

  model_result r;
  t.reset();
  for (int i = 0; i < loss_steps; ++i) r.losses.push_back(step(i).template item<float>());
  std::vector<double> per_step;
  for (int round = 0; round < o.rounds; ++round) {
    t.reset();
    for (int i = 0; i < o.warmup; ++i) bench::do_not_optimize(step(i).template data_ptr<float>());
    const auto t0 = bench::clock::now();
    for (int i = 0; i < steps; ++i) bench::do_not_optimize(step(o.warmup + i).template data_ptr<float>());
    per_step.push_back(bench::seconds_since(t0) / steps);
  }
  r.seconds_per_step = bench::median(per_step);
  return r;
}

void report(const char* model, std::int64_t n, const model_result& r) {
  const std::string tag = "libtorch_" + std::string(model) + "_batch" + std::to_string(n);
  bench::print((tag + "_images_per_second").c_str(), double(n) / r.seconds_per_step);
  bench::print((tag + "_ms_per_step").c_str(), r.seconds_per_step * 1e3);
  for (int s : {0, 1, 10, 19}) std::printf("libtorch_%s_loss_step_%d: %.7g\n", model, s, r.losses[std::size_t(s)]);
}

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse(argc, argv);
  bench::print_machine();
  torch::set_num_threads(o.threads);
  bench::print_libtorch_config();
  std::printf("method: median over %d rounds (each from the starting weights, %d warm-up steps) of %d (cnn) / %d (mlp) timed steps\n", o.rounds,
              o.warmup, o.cnn_steps, o.mlp_steps);
  if (o.model != "mlp") report("cnn", o.cnn_batch, measure<cnn_trainer>(o.cnn_batch, o.cnn_steps, o));
  if (o.model != "cnn") report("mlp", o.mlp_batch, measure<mlp_trainer>(o.mlp_batch, o.mlp_steps, o));
  bench::print_capacity_at_end();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_vision_train_libtorch: %s\n", e.what());
  return 2;
}
