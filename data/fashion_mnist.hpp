// Fashion-MNIST (or any IDX image/label pair) as pipeline datasets: images become float
// [N, rows, cols, 1] (NHWC with one channel) divided by `divisor` (as x / 255.0 in float32), labels int32.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>
#include "../io/idx.hpp"
#include "pipeline.hpp"

namespace kiln::data {

inline dataset to_dataset(const io::idx_labeled& idx, float divisor = 1.0f) {
  const auto& im = idx.images;
  std::vector<float> features(im.pixels.size());
  for (std::size_t i = 0; i < features.size(); ++i) features[i] = float(im.pixels[i]) / divisor;
  std::vector<std::int32_t> labels(idx.labels.values.begin(), idx.labels.values.end());
  return dataset(std::move(features), kiln::dims{im.rows, im.cols, 1}, std::move(labels));
}

// Labels are class indices. One outside [0, num_classes) would otherwise pass the loader and fail
// mid-epoch as an anonymous gather error, or count as a wrong answer in a test; so they are checked
// where the data enters, while the file is still known.
inline void check_labels(const io::idx_labels& labels, int num_classes, const std::string& source) {
  for (std::size_t i = 0; i < labels.values.size(); ++i)
    if (int(labels.values[i]) >= num_classes)
      throw error("kiln: " + source + ": the label of sample " + std::to_string(i) + " is " + std::to_string(int(labels.values[i])) +
                  ", out of range for " + std::to_string(num_classes) + " classes (0 to " + std::to_string(num_classes - 1) + ")");
}

inline constexpr int fashion_mnist_classes = 10;

struct fashion_mnist_datasets {
  dataset train, test;
};

// Pixels divided by `divisor` (255 gives [0, 1]); see io::load_fashion_mnist for the files.
inline fashion_mnist_datasets fashion_mnist(float divisor = 255.0f,
                                            const std::filesystem::path& dir = std::filesystem::path(io::fashion_mnist_dir)) {
  const auto files = io::load_fashion_mnist(dir);
  // The file load_fashion_mnist read: the gzipped one when both exist.
  auto labels_file = [&](const char* stem) {
    std::error_code ec;
    const auto gz = dir / (std::string(stem) + ".gz");
    return (std::filesystem::exists(gz, ec) ? gz : dir / stem).string();
  };
  check_labels(files.train.labels, fashion_mnist_classes, labels_file("train-labels-idx1-ubyte"));
  check_labels(files.test.labels, fashion_mnist_classes, labels_file("t10k-labels-idx1-ubyte"));
  return {to_dataset(files.train, divisor), to_dataset(files.test, divisor)};
}

}  // namespace kiln::data
