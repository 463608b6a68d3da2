// The real Fashion-MNIST files (Debian dataset-fashion-mnist): counts, class balance, the first
// labels and the published pixel statistics. Without the package the test reports SKIP (exit 77),
// never a pass.
#define DOCTEST_CONFIG_IMPLEMENT
#include <data/fashion_mnist.hpp>
#include <io/idx.hpp>
#include <cstdio>
#include <filesystem>
#include <doctest/doctest.h>

using namespace kiln;
namespace fs = std::filesystem;

TEST_CASE("data.idx.fashion_mnist_files") {
  const auto data = io::load_fashion_mnist();
  CHECK(data.train.images.count == 60000);
  CHECK(data.test.images.count == 10000);
  for (const auto* set : {&data.train, &data.test}) {
    CHECK(set->images.rows == 28);
    CHECK(set->images.cols == 28);
    CHECK(set->images.pixels.size() == std::size_t(set->images.count) * 784);
  }
  // Both splits are balanced: exactly 6000 / 1000 images of each of the 10 classes.
  std::array<int, 10> train_hist{}, test_hist{};
  int out_of_range = 0;
  for (auto l : data.train.labels.values) l < 10 ? ++train_hist[l] : ++out_of_range;
  for (auto l : data.test.labels.values) l < 10 ? ++test_hist[l] : ++out_of_range;
  CHECK(out_of_range == 0);
  for (int c = 0; c < 10; ++c) {
    CHECK(train_hist[std::size_t(c)] == 6000);
    CHECK(test_hist[std::size_t(c)] == 1000);
  }
  // The first labels as every Keras tutorial prints them, and the published mean/std of the
  // training pixels (0.2860, 0.3530 after scaling to [0, 1]).
  const std::vector<int> first_train = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, first_test = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
  for (int i = 0; i < 10; ++i) {
    CHECK(int(data.train.labels.values[std::size_t(i)]) == first_train[std::size_t(i)]);
    CHECK(int(data.test.labels.values[std::size_t(i)]) == first_test[std::size_t(i)]);
  }
  double sum = 0, sum_sq = 0;
  for (auto p : data.train.images.pixels) {
    sum += p / 255.0;
    sum_sq += (p / 255.0) * (p / 255.0);
  }
  const double n = double(data.train.images.pixels.size()), mean = sum / n;
  CHECK(mean == doctest::Approx(0.2860).epsilon(0.001));
  CHECK(std::sqrt(sum_sq / n - mean * mean) == doctest::Approx(0.3530).epsilon(0.001));

  const auto sets = data::fashion_mnist();
  CHECK(sets.train.size() == 60000);
  CHECK(sets.test.size() == 10000);
  CHECK(sets.train.sample_shape() == kiln::dims{28, 28, 1});
  const auto first = sets.train.features(0);
  for (int i = 0; i < 784; ++i) CHECK(first[std::size_t(i)] == float(data.train.images.pixels[std::size_t(i)]) / 255.0f);
}

int main(int argc, char** argv) {
  if (!fs::exists(fs::path(io::fashion_mnist_dir) / "train-images-idx3-ubyte.gz")) {
    std::printf("Fashion-MNIST is not installed in %s (Debian package dataset-fashion-mnist): skipped\n",
                std::string(io::fashion_mnist_dir).c_str());
    return 77;  // meson's SKIP
  }
  return doctest::Context(argc, argv).run();
}
