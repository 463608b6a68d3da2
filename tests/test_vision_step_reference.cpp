// One training step of three seed image classifiers against PyTorch: the MNIST CNN
// (models/mnist_cnn.hpp), the GAP conv head without dropout (models/conv_heads.hpp) and the
// one-block ResNet with its dropout (models/resnet.hpp; the generator rebuilds the first run's
// dropout mask from kiln's counter-based hash). Compared:
// the loss, the update of every trainable variable and the new batch-norm moving statistics, from
// tests/data/vision_step_reference.bin (written by tools/make_vision_step_reference.py, which
// rebuilds the networks in float64 torch from their definitions). The forward-only references
// (test_vision_models_reference) cannot see the backward pass or the moving-statistics updates: a
// wrong gradient in conv2d ('valid' or 'same'), the pools, batch norm (through its batch
// statistics), global average pooling, the residual addition, dropout or dense shows up here, where the other model tests see at
// most a slower fall of the loss.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include "models/models.hpp"
#include "test_util.hpp"

#ifndef KILN_VISION_STEP_REFERENCE
#error "tests/meson.build defines KILN_VISION_STEP_REFERENCE, the path of tests/data/vision_step_reference.bin"
#endif

using namespace kiln;

namespace {

// Must match tools/make_vision_step_reference.py.
constexpr double learning_rate = 0.1;
constexpr std::int64_t batch_size = 4;
constexpr std::int32_t labels[batch_size] = {3, 7, 0, 9};
constexpr std::uint64_t image_seed = 1000;

struct variable_seed {
  std::string name;
  std::uint64_t seed;
};

std::vector<variable_seed> mnist_cnn_seeds() {
  return {{"conv1/kernel", 1}, {"conv1/bias", 2},   {"bn1/gamma", 3},     {"bn1/beta", 4},      {"bn1/moving_mean", 5},
          {"bn1/moving_variance", 6}, {"conv2/kernel", 7}, {"conv2/bias", 8}, {"bn2/gamma", 9},   {"bn2/beta", 10},
          {"bn2/moving_mean", 11},    {"bn2/moving_variance", 12}, {"dense/kernel", 13}, {"dense/bias", 14}};
}

std::vector<variable_seed> conv_head_gap_seeds() {
  std::vector<variable_seed> out;
  std::uint64_t seed = 100;  // the generator's trunk_variables(): seeds 101.. in this order
  for (int i = 1; i <= 3; ++i) {
    const std::string conv = "trunk" + std::to_string(i), bn = "trunk_bn" + std::to_string(i);
    for (const std::string& name : {conv + "/kernel", conv + "/bias", bn + "/gamma", bn + "/beta", bn + "/moving_mean", bn + "/moving_variance"})
      out.push_back({name, ++seed});
  }
  out.push_back({"logits/kernel", 201});
  out.push_back({"logits/bias", 202});
  return out;
}

std::vector<variable_seed> resnet1_seeds() {
  std::vector<variable_seed> out;
  std::uint64_t seed = 300;  // the generator's resnet1_variables(): seeds 301.. in this order
  auto conv_bn = [&](const std::string& conv, const std::string& bn) {
    for (const char* part : {"/kernel", "/bias"}) out.push_back({conv + part, ++seed});
    if (!bn.empty())
      for (const char* part : {"/gamma", "/beta", "/moving_mean", "/moving_variance"}) out.push_back({bn + part, ++seed});
  };
  conv_bn("conv1", "");
  conv_bn("conv2", "");
  conv_bn("res1/conv_a", "res1/bn_a");
  conv_bn("res1/conv_b", "res1/bn_b");
  conv_bn("conv3", "");
  out.push_back({"dense/kernel", 401});
  out.push_back({"dense/bias", 402});
  out.push_back({"logits/kernel", 403});
  out.push_back({"logits/bias", 404});
  return out;
}

// A seed network with plain SGD instead of its Adam (classifier_train), so that the update is
// lr * gradient and the comparison checks the gradient itself.
template <models::network Net> struct sgd_step {
  constexpr graph operator()() const {
    graph g;
    const tensor images = models::images_placeholder(g);
    const tensor labels = models::labels_placeholder(g);
    const tensor loss = sparse_softmax_cross_entropy(labels, Net(g, images, true));
    g.output("loss", loss);
    g.output("step", minimize(sgd{.learning_rate = learning_rate}, loss));
    return g;
  }
};

struct reference {
  std::map<std::string, double> loss;                 // by network
  std::map<std::string, std::vector<double>> delta;  // "network:variable": value after the step minus before, kiln's layout
};

reference load_reference(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("test_vision_step_reference: cannot open the reference '" + path +
                       "' (tools/make_vision_step_reference.py writes it)");
  reference r;
  std::string line;
  std::getline(in, line);
  if (line != "kiln-vision-step-reference 2") throw error("'" + path + "': not a version-2 step reference (first line '" + line + "')");
  std::vector<std::pair<std::string, std::size_t>> index;
  while (std::getline(in, line) && line != "end") {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first == "loss") {
      std::string network;
      double loss = 0;
      if (!(fields >> network >> loss)) throw error("'" + path + "': bad loss line '" + line + "'");
      r.loss[network] = loss;
      continue;
    }
    std::size_t count = 0;
    if (!(fields >> count)) throw error("'" + path + "': bad index line '" + line + "'");
    index.emplace_back(first, count);
  }
  if (line != "end") throw error("'" + path + "': the index has no 'end' line");
  for (const auto& [name, count] : index) {
    std::vector<float> v(count);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(float)));  // little-endian f32, as x86/ARM
    if (!in) throw error("'" + path + "': truncated in the values of '" + name + "'");
    r.delta[name] = std::vector<double>(v.begin(), v.end());
  }
  return r;
}

// The values of tools/make_vision_step_reference.py: kt::rng per variable, kernels of variance
// about 1/fan_in, gammas and variances in [0.5, 1.5], the rest near 0, as float32.
void set_reference_weights(variables& store, const std::vector<variable_seed>& seeds) {
  for (const auto& [name, seed] : seeds) {
    auto* e = store.find(name);
    REQUIRE_MESSAGE(e != nullptr, "the network has no variable " << name);
    REQUIRE(e->type == dtype::f32);
    float* w = reinterpret_cast<float*>(e->data.data());
    const std::string_view n = name;
    double fan_in = 1;
    for (int d = 0; d + 1 < e->shape.rank; ++d) fan_in *= double(e->shape.d[d]);
    kt::rng r(seed);
    for (std::int64_t k = 0; k < e->shape.elements(); ++k) {
      double v;
      if (n.ends_with("/kernel")) v = r.uniform(-1, 1) * std::sqrt(3.0 / fan_in);
      else if (n.ends_with("/gamma") || n.ends_with("/moving_variance")) v = r.uniform(0.5, 1.5);
      else v = r.uniform(-0.2, 0.2);
      w[k] = float(v);
    }
  }
}

std::vector<float> reference_images() {
  kt::rng r(image_seed);
  std::vector<float> x(std::size_t(batch_size * 28 * 28));
  for (float& v : x) v = float(r.uniform(0, 1));
  return x;
}

std::vector<float> values_of(const variables& store, const std::string& name) {
  const auto& e = store.at(name);
  const float* p = reinterpret_cast<const float*>(e.data.data());
  return {p, p + e.shape.elements()};
}

template <models::network Net> void check_one_step(const std::string& network, const std::vector<variable_seed>& seeds) {
  const reference ref = load_reference(KILN_VISION_STEP_REFERENCE);
  REQUIRE_MESSAGE(ref.loss.count(network) == 1, "the reference has no loss of " << network);

  variables store;
  auto step = compile<cpu>(sgd_step<Net>{}, &store);
  set_reference_weights(store, seeds);
  std::map<std::string, std::vector<float>> before;
  for (const auto& s : seeds) before[s.name] = values_of(store, s.name);

  const std::vector<float> images = reference_images();
  const std::vector<std::int32_t> label_values(std::begin(labels), std::end(labels));
  const auto& out = step.run({{"images", view(images, {batch_size, 28, 28, 1})}, {"labels", view(label_values, {batch_size})}});
  const double loss = out.template get<float>("loss").item();
  MESSAGE(network << " loss: kiln " << loss << ", PyTorch f64 " << ref.loss.at(network));
  CHECK(kt::close(loss, ref.loss.at(network), 1e-5, 1e-6));

  double network_largest = 0;  // the largest update of any variable of the network
  for (const auto& s : seeds)
    for (double w : ref.delta.count(network + ":" + s.name) ? ref.delta.at(network + ":" + s.name) : std::vector<double>{})
      network_largest = std::max(network_largest, std::fabs(w));
  REQUIRE(network_largest > 0);

  std::size_t compared = 0;
  for (const auto& s : seeds) {
    const std::string key = network + ":" + s.name;
    INFO("variable " << key);
    REQUIRE_MESSAGE(ref.delta.count(key) == 1, "the reference has no " << key);
    const std::vector<double>& want = ref.delta.at(key);
    const std::vector<float> after = values_of(store, s.name);
    const std::vector<float>& was = before.at(s.name);
    REQUIRE(after.size() == want.size());
    // The update after - before, computed from two f32 values: each is rounded to half an ulp of
    // its magnitude, and the f32 forward and backward (sums over up to N*H*W = 784 terms, with
    // cancellation) give errors up to about 4e-5 of the tensor's largest update. So:
    // |got - want| <= 3e-4 * max |want| + 1 ulp of the weight. A conv bias right before a batch
    // norm has a zero gradient (the norm subtracts any per-channel constant): its scale is the
    // network's largest update, and f32 leaves about 1e-8 there.
    double largest = 0;
    for (double w : want) largest = std::max(largest, std::fabs(w));
    const bool zero_gradient = largest < 1e-9 * network_largest;
    const double scale = zero_gradient ? network_largest : largest;
    std::size_t bad = 0;
    double worst = 0;
    std::ostringstream first;
    first.precision(9);
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double got = double(after[i]) - double(was[i]);
      const double bound = 3e-4 * scale + 1.2e-7 * std::fabs(double(was[i]));
      worst = std::max(worst, std::fabs(got - want[i]) / scale);
      if (!(std::fabs(got - want[i]) <= bound)) {
        if (bad < 5) first << " [" << i << "] got " << got << " want " << want[i] << ";";
        ++bad;
      }
    }
    MESSAGE(key << ": largest update " << largest << std::string(zero_gradient ? " (zero gradient; scale: the network's largest update)" : "")
                << ", max |kiln - torch| / scale " << worst);
    CHECK_MESSAGE(bad == 0, key << ": " << bad << " of " << want.size() << " updates differ:" << first.str());
    ++compared;
  }
  // Every variable of the network is in the table (a new one would go unchecked otherwise).
  std::size_t f32_variables = 0;
  for (std::size_t i = 0; i < store.size(); ++i)
    if (store[i].type == dtype::f32) ++f32_variables;
  CHECK(compared == f32_variables);
}

}  // namespace

TEST_CASE("vision_models.step_reference.mnist_cnn_sgd_step_matches_pytorch") {
  check_one_step<&models::mnist_cnn>("mnist_cnn", mnist_cnn_seeds());
}

TEST_CASE("vision_models.step_reference.conv_head_gap_sgd_step_matches_pytorch") {
  check_one_step<&models::conv_head<models::head::gap, false>>("conv_head_gap", conv_head_gap_seeds());
}

TEST_CASE("vision_models.step_reference.resnet_one_block_sgd_step_matches_pytorch") {
  check_one_step<&models::resnet<1>>("resnet1", resnet1_seeds());
}
