// Fashion-MNIST classifiers of models/ trained with fit(): the seed's MNIST CNN, the TensorFlow
// tutorial's MLP, a global-average-pooling head vs a fully connected head on one conv trunk, and
// the seed's ResNet.
//
//   build/examples/fashion_cnn [--model cnn|mlp|gap|fc|resnet] [--epochs N] [--batch N] [--seed N]
//                              [--logdir DIR] [--checkpoint-dir DIR [--keep-checkpoints K] [--resume]]
//                              [--dropout] [--blocks N] [--augment] [--recalibrate-bn] [--validation-split F]
//                              [--train-images N] [--test-images N] [--min-test-accuracy X] [--data-dir DIR]
//
// 10% of the training images (seeded split) are held out for validation after every epoch; the
// rest are shuffled per epoch and batched. Adam with Keras' defaults minimizes the mean sparse
// softmax cross-entropy. --logdir: TensorBoard runs train/ (epoch and every-100-step scalars, the
// first layer's kernels as a histogram and an image), validation/ and test/. --checkpoint-dir:
// the whole variable store (weights, Adam slots, counters) after every epoch, the last K kept;
// --resume continues from the newest one, with the same batches an uninterrupted run would see.
// The test set is classified by the inference graph (moving batch-norm statistics, no dropout)
// over the same variables; --recalibrate-bn first re-estimates those statistics with the final
// weights (Keras does not: off by default). The last two lines are always
//   test_accuracy: X
//   train_images_per_second: X     (the train steps only: no validation, checkpoints, test)
// The networks compile in translation units of their own (fashion_cnn_small.cpp, one per conv
// head variant and one per ResNet depth), each under a minute; a ResNet costs about 12 s of
// compile time per residual block, so the build holds the depths listed in examples/meson.build.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iterator>
#include <limits>
#include <string>
#include "cli.hpp"
#include "fashion_cnn.hpp"

using namespace fashion_example;

#ifndef FASHION_RESNET_DEPTHS
#error "compile with -DFASHION_RESNET_DEPTHS=<the depths of the fashion_cnn_resnet.cpp objects>, e.g. 1,2"
#endif
#ifndef FASHION_CONV_HEADS
#define FASHION_CONV_HEADS 1
#endif
#define FASHION_TEXT(...) #__VA_ARGS__
#define FASHION_EXPAND_TEXT(...) FASHION_TEXT(__VA_ARGS__)

namespace {

// A leading 0 keeps the array valid when the build has no ResNet (an empty depth list).
constexpr int resnet_depths[] = {0, FASHION_RESNET_DEPTHS};
constexpr int default_resnet_depth = [] {
  int d = 0;
  for (int v : resnet_depths) d = v > d ? v : d;
  return d;
}();

CLI::App* the_app = nullptr;  // for the flag errors found after parsing (a ResNet depth not built)

[[noreturn]] void bad_flag(const std::string& why) { examples_cli::bad_flag(*the_app, why); }

flags parse(CLI::App& app, int argc, char** argv) {
  using examples_cli::number;
  constexpr auto int64_max = std::numeric_limits<std::int64_t>::max();
  flags f;
  app.add_option("--model", f.model,
                 "cnn: the seed's MNIST CNN; mlp: 784-300-10; gap / fc: global average pooling or a dense 100 layer on a "
                 "3-conv trunk; resnet: the seed's ResNet")
      ->check(CLI::IsMember({"cnn", "mlp", "gap", "fc", "resnet"}))
      ->capture_default_str();
  number<std::int64_t>(app, "--epochs", f.epochs, 1, int64_max, "default: cnn 5, mlp 10, gap 5, fc 5, resnet 10")->default_str("");
  number<std::int64_t>(app, "--batch", f.batch, 1, int64_max,
                       "default: cnn 64, mlp 100 (the tutorial's), gap 64, fc 64, resnet 64; at most the training images")
      ->default_str("");
  number<std::uint64_t>(app, "--seed", f.seed, 0, std::numeric_limits<std::uint64_t>::max(), "the split, the weights and every shuffle");
  app.add_option("--logdir", f.logdir, "TensorBoard runs train/, validation/ and test/ go here")->check([](const std::string& d) {
    return d.empty() ? std::string("needs a directory") : std::string();
  });
  app.add_option("--checkpoint-dir", f.checkpoint_dir, "the whole variable store after every epoch")->check([](const std::string& d) {
    return d.empty() ? std::string("needs a directory") : std::string();
  });
  number<int>(app, "--keep-checkpoints", f.keep_checkpoints, 1, std::numeric_limits<int>::max(), "the newest K checkpoints are kept");
  app.add_flag("--resume", f.resume, "continue from the newest checkpoint of --checkpoint-dir");
  app.add_flag("--dropout", f.dropout, "gap / fc: Dropout(0.5) before the last dense layer");
  number<int>(app, "--blocks", f.blocks, 0, std::numeric_limits<int>::max(),
              "resnet: residual blocks, one of " FASHION_EXPAND_TEXT(FASHION_RESNET_DEPTHS) " (the largest by default; the seed has 10: "
              "add depths to resnet_depths in examples/meson.build)")
      ->default_str("");
  app.add_flag("--augment", f.augment, "random left-right flips of the training images");
  app.add_flag("--recalibrate-bn", f.recalibrate_bn,
               "before the test, re-estimate the batch-norm moving statistics with the final weights (one pass over the "
               "training images in training mode, no weight updates)");
  app.add_option("--lr-schedule", f.lr_schedule, "cosine: decays the rate to 0 over all the epochs; constant: as the seeds")
      ->check(CLI::IsMember({"constant", "cosine"}))
      ->capture_default_str();
  number<double>(app, "--learning-rate", f.learning_rate, 1e-9, 10, "Adam's learning rate, the cosine's peak (default: cnn 0.002, the others 0.001)")
      ->default_str("");
  number<double>(app, "--validation-split", f.validation_split, 0, 0.9, "fraction of the training images held out (0: none)");
  number<std::int64_t>(app, "--train-images", f.train_images, 1, int64_max, "train on a seeded subset of N images of the training split")
      ->default_str("");
  number<std::int64_t>(app, "--test-images", f.test_images, 1, int64_max, "test on a seeded subset of N images of the test set")->default_str("");
  number<double>(app, "--min-test-accuracy", f.min_test_accuracy, 0, 1, "exit with status 1 when the test accuracy is below X")->default_str("");
  app.add_option("--data-dir", f.data_dir, "the directory of the Fashion-MNIST IDX files (gzipped or not)")->capture_default_str();
  examples_cli::parse(app, argc, argv);
  if (f.resume && f.checkpoint_dir.empty()) bad_flag("--resume needs --checkpoint-dir");
  if (f.dropout && f.model != "gap" && f.model != "fc") bad_flag("--dropout applies to --model gap and fc");
  if (f.blocks != 0 && f.model != "resnet") bad_flag("--blocks applies to --model resnet");
  return f;
}

// run_resnet<blocks> when that depth is compiled in.
template <std::size_t I = 1> int run_resnet_with(const flags& f, int blocks) {
  if constexpr (I < std::size(resnet_depths)) {
    if (blocks == resnet_depths[I]) return run_resnet<resnet_depths[I]>(f);
    return run_resnet_with<I + 1>(f, blocks);
  } else {
    if (std::size(resnet_depths) == 1) bad_flag("--model resnet: this build has no ResNet (a sanitizer build)");
    bad_flag("--blocks " + std::to_string(blocks) + ": this build has ResNets of " FASHION_EXPAND_TEXT(FASHION_RESNET_DEPTHS) " blocks");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Fashion-MNIST classifiers of models/ trained with fit() (see the head of examples/fashion_cnn.cpp).", "fashion_cnn");
  the_app = &app;
  const flags f = parse(app, argc, argv);
  try {
    using models::head;
    if (f.model == "cnn") return run_cnn(f);
    if (f.model == "mlp") return run_mlp(f);
#if FASHION_CONV_HEADS
    if (f.model == "gap") return f.dropout ? run_conv_head<head::gap, true>(f) : run_conv_head<head::gap, false>(f);
    if (f.model == "fc") return f.dropout ? run_conv_head<head::fc, true>(f) : run_conv_head<head::fc, false>(f);
#else
    if (f.model == "gap" || f.model == "fc") bad_flag("--model " + f.model + ": this build leaves out the conv-head models (a sanitizer build)");
#endif
    return run_resnet_with(f, f.blocks == 0 ? default_resnet_depth : f.blocks);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_cnn: %s\n", e.what());
    return 1;
  }
}
