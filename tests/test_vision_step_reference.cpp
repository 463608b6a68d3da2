// One training step of the seed MNIST CNN (models/mnist_cnn.hpp) against PyTorch: the loss, the
// update of every trainable variable and the new batch-norm moving statistics, from
// tests/data/vision_step_reference.bin (written by tools/make_vision_step_reference.py, which
// rebuilds the network in float64 torch from its definition). The forward-only references
// (test_vision_models_reference) cannot see the backward pass: a wrong gradient in conv2d, the
// pools, batch norm (through its batch statistics) or dense shows up here and nowhere else but as
// a slower fall of the loss.
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
  const char* name;
  std::uint64_t seed;
};
constexpr variable_seed seeds[] = {
    {"conv1/kernel", 1}, {"conv1/bias", 2},       {"bn1/gamma", 3},        {"bn1/beta", 4},         {"bn1/moving_mean", 5},
    {"bn1/moving_variance", 6}, {"conv2/kernel", 7}, {"conv2/bias", 8},   {"bn2/gamma", 9},        {"bn2/beta", 10},
    {"bn2/moving_mean", 11},    {"bn2/moving_variance", 12}, {"dense/kernel", 13}, {"dense/bias", 14},
};

// The seed's network with plain SGD instead of its Adam (classifier_train), so that the update is
// lr * gradient and the comparison checks the gradient itself.
struct mnist_cnn_sgd_step {
  constexpr graph operator()() const {
    graph g;
    const tensor images = models::images_placeholder(g);
    const tensor labels = models::labels_placeholder(g);
    const tensor loss = sparse_softmax_cross_entropy(labels, models::mnist_cnn(g, images, true));
    g.output("loss", loss);
    g.output("step", minimize(sgd{.learning_rate = learning_rate}, loss));
    return g;
  }
};

struct reference {
  double loss = 0;
  std::map<std::string, std::vector<double>> delta;  // value after the step minus before, kiln's layout
  std::vector<std::string> order;
};

reference load_reference(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("test_vision_step_reference: cannot open the reference '" + path +
                       "' (tools/make_vision_step_reference.py writes it)");
  reference r;
  std::string line;
  std::getline(in, line);
  if (line != "kiln-vision-step-reference 1") throw error("'" + path + "': not a version-1 step reference (first line '" + line + "')");
  std::getline(in, line);
  if (std::sscanf(line.c_str(), "loss %lf", &r.loss) != 1) throw error("'" + path + "': no loss line (got '" + line + "')");
  std::vector<std::pair<std::string, std::size_t>> index;
  while (std::getline(in, line) && line != "end") {
    std::istringstream fields(line);
    std::string name;
    std::size_t count = 0;
    if (!(fields >> name >> count)) throw error("'" + path + "': bad index line '" + line + "'");
    index.emplace_back(name, count);
  }
  if (line != "end") throw error("'" + path + "': the index has no 'end' line");
  for (const auto& [name, count] : index) {
    std::vector<double> v(count);
    in.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(double)));  // little-endian f64, as x86/ARM
    if (!in) throw error("'" + path + "': truncated in the values of '" + name + "'");
    r.delta[name] = std::move(v);
    r.order.push_back(name);
  }
  return r;
}

// The values of tools/make_vision_step_reference.py: kt::rng per variable, kernels of variance
// about 1/fan_in, gammas and variances in [0.5, 1.5], the rest near 0, as float32.
void set_reference_weights(variables& store) {
  for (const auto& [name, seed] : seeds) {
    auto* e = store.find(name);
    REQUIRE_MESSAGE(e != nullptr, "the network has no variable " << std::string(name));
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

}  // namespace

TEST_CASE("vision_models.step_reference.mnist_cnn_sgd_step_matches_pytorch") {
  const reference ref = load_reference(KILN_VISION_STEP_REFERENCE);
  REQUIRE(ref.order.size() == std::size(seeds));

  variables store;
  auto step = compile<cpu>(mnist_cnn_sgd_step{}, &store);
  set_reference_weights(store);
  std::map<std::string, std::vector<float>> before;
  for (const auto& s : seeds) before[s.name] = values_of(store, s.name);

  const std::vector<float> images = reference_images();
  const std::vector<std::int32_t> label_values(std::begin(labels), std::end(labels));
  const auto& out = step.run({{"images", view(images, {batch_size, 28, 28, 1})}, {"labels", view(label_values, {batch_size})}});
  const double loss = out.get<float>("loss").item();
  MESSAGE("loss: kiln " << loss << ", PyTorch f64 " << ref.loss);
  CHECK(kt::close(loss, ref.loss, 1e-5, 1e-6));

  for (const auto& s : seeds) {
    INFO("variable " << std::string(s.name));
    REQUIRE(ref.delta.count(s.name) == 1);
    const std::vector<double>& want = ref.delta.at(s.name);
    const std::vector<float> after = values_of(store, s.name);
    const std::vector<float>& was = before.at(s.name);
    REQUIRE(after.size() == want.size());
    // The update after - before, computed from two f32 values: each is rounded to half an ulp of
    // its magnitude, and the f32 forward and backward add a relative error far below 1e-4 of the
    // largest update. So: |got - want| <= 1e-4 * max |want| + 1 ulp of the weight.
    double largest = 0;
    for (double w : want) largest = std::max(largest, std::fabs(w));
    REQUIRE(largest > 0);
    std::size_t bad = 0;
    double worst = 0;
    std::ostringstream first;
    first.precision(9);
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double got = double(after[i]) - double(was[i]);
      const double bound = 1e-4 * largest + 1.2e-7 * std::fabs(double(was[i]));
      worst = std::max(worst, std::fabs(got - want[i]) / largest);
      if (!(std::fabs(got - want[i]) <= bound)) {
        if (bad < 5) first << " [" << i << "] got " << got << " want " << want[i] << ";";
        ++bad;
      }
    }
    MESSAGE(std::string(s.name) << ": largest update " << largest << ", max |kiln - torch| / largest " << worst);
    CHECK_MESSAGE(bad == 0, std::string(s.name) << ": " << bad << " of " << want.size() << " updates differ:" << first.str());
  }
}
