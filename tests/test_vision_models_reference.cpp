// The seeds' image classifiers (models/) against plain-loop f64 forward passes
// (vision_reference.hpp): the MNIST CNN (inference, and the train graph's loss with batch
// statistics), the ResNet with one residual block and the GAP conv head, at inference, with every
// weight and batch-norm statistic set to varied values (the initial ones, zero biases and unit
// statistics, would hide a missing bias or normalization). The other vision_models tests check
// shapes and that training lowers the loss; these check what the networks compute.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "vision_models_util.hpp"
#include "vision_reference.hpp"

using namespace kiln;
using namespace vision_test;

namespace {

// Deterministic varied values for every f32 variable: kernels of variance about 1/fan_in (so the
// activations keep their scale through the layers), biases and betas near 0, gammas and variances
// near 1, means near 0.
void set_varied_weights(variables& store) {
  for (std::size_t i = 0; i < store.size(); ++i) {
    const auto& e = store[i];
    if (e.type != dtype::f32) continue;
    float* w = reinterpret_cast<float*>(store.find(e.name)->data.data());
    kt::rng r(hash_name(e.name));
    const std::string_view name = e.name;
    auto ends_with = [&](std::string_view s) { return name.size() >= s.size() && name.substr(name.size() - s.size()) == s; };
    double fan_in = 1;
    for (int d = 0; d + 1 < e.shape.rank; ++d) fan_in *= double(e.shape.d[d]);
    for (std::int64_t k = 0; k < e.shape.elements(); ++k) {
      double v;
      if (ends_with("/kernel")) v = r.uniform(-1, 1) * std::sqrt(3.0 / fan_in);
      else if (ends_with("/gamma") || ends_with("/moving_variance")) v = r.uniform(0.5, 1.5);
      else v = r.uniform(-0.2, 0.2);  // bias, beta, moving_mean
      w[k] = float(v);
    }
  }
}

vision_ref::act images_of(const batch_data& b, std::int64_t n) {
  vision_ref::act x = vision_ref::make(n, 28, 28, 1);
  for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = b.images[i];
  return x;
}

template <class Infer> void check_inference(variables& store, auto&& reference) {
  auto infer = compile<cpu>(Infer{}, &store);
  set_varied_weights(store);
  const std::int64_t n = 3;
  const batch_data b = make_batch(n, 5);
  const auto& out = infer.run({{"images", view(b.images, {n, 28, 28, 1})}});
  const vision_ref::act want = reference(store, images_of(b, n));
  kt::check_values<float>("logits", out.template get<float>("logits"), dims{n, 10}, want.v, 1e-4, 1e-4);
}

}  // namespace

TEST_CASE("vision_models.reference.mnist_cnn_inference") {
  variables store;
  check_inference<models::mnist_cnn_infer>(store, [](const variables& s, const vision_ref::act& x) { return vision_ref::mnist_cnn(s, x, false); });
}

TEST_CASE("vision_models.reference.mnist_cnn_train_loss_with_batch_statistics") {
  variables store;
  auto train = compile<cpu>(models::mnist_cnn_train{}, &store);
  set_varied_weights(store);
  const std::int64_t n = 4;
  const batch_data b = make_batch(n, 6);
  const double want = vision_ref::mean_cross_entropy(vision_ref::mnist_cnn(store, images_of(b, n), true), b.labels);
  const double got = train.run({{"images", view(b.images, {n, 28, 28, 1})}, {"labels", view(b.labels, {n})}}).get<float>("loss").item();
  CHECK(kt::close(got, want, 1e-4, 1e-5));
}

TEST_CASE("vision_models.reference.resnet_one_block_inference") {
  variables store;
  check_inference<models::resnet_infer<1>>(store, [](const variables& s, const vision_ref::act& x) { return vision_ref::resnet(s, x, 1); });
}

TEST_CASE("vision_models.reference.conv_head_gap_inference") {
  variables store;
  check_inference<models::conv_head_infer<models::head::gap, true>>(
      store, [](const variables& s, const vision_ref::act& x) { return vision_ref::conv_head_gap(s, x); });
}
