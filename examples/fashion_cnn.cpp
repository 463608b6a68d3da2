// Fashion-MNIST classifiers of models/ trained with fit(): the seed's MNIST CNN, the TensorFlow
// tutorial's MLP, a global-average-pooling head vs a fully connected head on one conv trunk, and
// the seed's ResNet.
//
//   build/examples/fashion_cnn [--model cnn|mlp|gap|fc|resnet] [--epochs N] [--batch N] [--seed N]
//                              [--logdir DIR] [--checkpoint-dir DIR [--keep-checkpoints K] [--resume]]
//                              [--dropout] [--blocks N] [--augment] [--recalibrate-bn] [--validation-split F]
//                              [--train-images N] [--test-images N] [--min-test-accuracy X]
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
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
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

constexpr std::string_view usage =
    "usage: fashion_cnn [--model cnn|mlp|gap|fc|resnet] [--epochs N] [--batch N] [--seed N] [--logdir DIR]\n"
    "                   [--checkpoint-dir DIR] [--keep-checkpoints K] [--resume] [--dropout] [--blocks N] [--augment]\n"
    "                   [--recalibrate-bn] [--lr-schedule constant|cosine] [--learning-rate X] [--validation-split F]\n"
    "                   [--train-images N] [--test-images N] [--min-test-accuracy X]\n"
    "  --model             cnn (default): the seed's MNIST CNN; mlp: 784-300-10; gap / fc: global average pooling\n"
    "                      or a dense 100 layer on a 3-conv trunk; resnet: the seed's ResNet\n"
    "  --epochs N          default: cnn 5, mlp 10, gap 5, fc 5, resnet 10\n"
    "  --batch N           default: cnn 64, mlp 100 (the tutorial's), gap 64, fc 64, resnet 64\n"
    "  --dropout           gap / fc: Dropout(0.5) before the last dense layer\n"
    "  --blocks N          resnet: residual blocks, one of " FASHION_EXPAND_TEXT(FASHION_RESNET_DEPTHS) " (the largest by default;\n"
    "                      the seed has 10: add depths to resnet_depths in examples/meson.build)\n"
    "  --augment           random left-right flips of the training images\n"
    "  --recalibrate-bn    before the test, re-estimate the batch-norm moving statistics with the final weights\n"
    "                      (one pass over the training images in training mode, no weight updates)\n"
    "  --lr-schedule S     cosine (default): decays the rate to 0 over all the epochs; constant: as the seeds\n"
    "  --learning-rate X   Adam's learning rate, the cosine's peak (default: cnn 0.002, the others 0.001)\n"
    "  --validation-split F  fraction of the training images held out (default 0.1; 0: none)\n"
    "  --train-images N    train on a seeded subset of N images of the training split\n"
    "  --test-images N     test on a seeded subset of N images of the test set\n"
    "  --min-test-accuracy X  exit with status 1 when the test accuracy is below X\n";

[[noreturn]] void bad_flag(const std::string& why) {
  std::fprintf(stderr, "fashion_cnn: %s\n%.*s", why.c_str(), int(usage.size()), usage.data());
  std::exit(2);
}

std::int64_t parse_integer(std::string_view flag, const char* text, std::int64_t min) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min)
    bad_flag(std::string(flag) + " expects an integer >= " + std::to_string(min) + ", got '" + text + "'");
  return v;
}

double parse_number(std::string_view flag, const char* text, double min, double max) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !(v >= min && v <= max))
    bad_flag(std::string(flag) + " expects a number in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" + text + "'");
  return v;
}

flags parse(int argc, char** argv) {
  flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s", int(usage.size()), usage.data());
      std::exit(0);
    }
    if (a == "--resume") { f.resume = true; continue; }
    if (a == "--dropout") { f.dropout = true; continue; }
    if (a == "--augment") { f.augment = true; continue; }
    if (a == "--recalibrate-bn") { f.recalibrate_bn = true; continue; }
    const bool known = a == "--model" || a == "--epochs" || a == "--batch" || a == "--seed" || a == "--logdir" || a == "--checkpoint-dir" ||
                       a == "--keep-checkpoints" || a == "--blocks" || a == "--validation-split" || a == "--train-images" ||
                       a == "--test-images" || a == "--min-test-accuracy" || a == "--lr-schedule" || a == "--learning-rate";
    if (!known) bad_flag("unknown flag '" + std::string(a) + "'");
    if (i + 1 >= argc) bad_flag(std::string(a) + " needs a value");
    const char* value = argv[++i];
    if (a == "--model") {
      f.model = value;
      if (f.model != "cnn" && f.model != "mlp" && f.model != "gap" && f.model != "fc" && f.model != "resnet")
        bad_flag("unknown model '" + f.model + "'");
    } else if (a == "--epochs") {
      f.epochs = parse_integer(a, value, 1);
    } else if (a == "--batch") {
      f.batch = parse_integer(a, value, 1);
    } else if (a == "--seed") {
      f.seed = std::uint64_t(parse_integer(a, value, 0));
    } else if (a == "--logdir") {
      f.logdir = value;
      if (f.logdir.empty()) bad_flag("--logdir needs a directory");
    } else if (a == "--checkpoint-dir") {
      f.checkpoint_dir = value;
      if (f.checkpoint_dir.empty()) bad_flag("--checkpoint-dir needs a directory");
    } else if (a == "--keep-checkpoints") {
      f.keep_checkpoints = int(parse_integer(a, value, 1));
    } else if (a == "--blocks") {
      f.blocks = int(parse_integer(a, value, 0));
    } else if (a == "--lr-schedule") {
      f.lr_schedule = value;
      if (f.lr_schedule != "constant" && f.lr_schedule != "cosine") bad_flag("unknown --lr-schedule '" + f.lr_schedule + "' (constant or cosine)");
    } else if (a == "--learning-rate") {
      f.learning_rate = parse_number(a, value, 1e-9, 10);
    } else if (a == "--validation-split") {
      f.validation_split = parse_number(a, value, 0, 0.9);
    } else if (a == "--train-images") {
      f.train_images = parse_integer(a, value, 1);
    } else if (a == "--test-images") {
      f.test_images = parse_integer(a, value, 1);
    } else {
      f.min_test_accuracy = parse_number(a, value, 0, 1);
    }
  }
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
  const flags f = parse(argc, argv);
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
