// Shared by the translation units of examples/fashion_cnn (one per model family, so that each
// compiles in well under a minute): the flags, the fit/eval graphs around a network of models/ and
// the train-then-test driver.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>
#include <data/fashion_mnist.hpp>
#include <data/pipeline.hpp>
#include <io/tensorboard.hpp>
#include <kiln.hpp>
#include <models/classifier.hpp>
#include <models/conv_heads.hpp>
#include <train/fit.hpp>
#include <train/metrics.hpp>

namespace fashion_example {

using namespace kiln;

struct flags {
  std::string model = "cnn";
  std::int64_t epochs = 0;         // 0: the model's default
  std::int64_t batch = 0;          // 0: the model's default
  std::string logdir;
  std::string checkpoint_dir;
  int keep_checkpoints = 3;
  bool resume = false;
  std::uint64_t seed = 0;
  std::int64_t train_images = 0;   // 0: all of the training split
  std::int64_t test_images = 0;    // 0: all 10,000
  double validation_split = 0.1;
  bool augment = false;            // random left-right flips of the training images
  bool dropout = false;            // gap / fc: Dropout(0.5) before the classifier
  bool recalibrate_bn = false;     // re-estimate the batch-norm moving statistics before the test
  int blocks = 0;                  // resnet: residual blocks (0: the default)
  double min_test_accuracy = -1;   // exit 1 below this (for tests)
  std::string lr_schedule = "cosine";  // cosine (over the whole run, to 0) | constant (the seeds')
  double learning_rate = 0;        // Adam's, the cosine's peak; 0: the model's default
  std::string data_dir = std::string(io::fashion_mnist_dir);  // the IDX files
};

// Static facts of a model, for the log and TensorBoard.
struct model_info {
  const char* name;
  const char* description;
  const char* first_kernel;        // the variable drawn as an image: [kh, kw, 1, units]
  int kernel_h, kernel_w, kernel_units;
  std::int64_t default_batch, default_epochs;
  double default_learning_rate = 1e-3;  // Keras' Adam default
};

// The graphs fit() drives. Train: the network in training mode, the mean sparse softmax
// cross-entropy minimized by Adam (Keras' defaults, as the seeds; the learning rate is a variable
// that --lr-schedule sets before each step, so one compiled step serves every schedule and number
// of epochs), and running metrics over the epoch: "loss" (mean of the per-sample losses, so a
// partial last batch weighs what it holds), "acc", plus "step". Eval: the same metrics with the moving statistics and no dropout; its metric
// state has other names than the train graph's, as both graphs live in one variable store.
template <models::network Net> struct fit_train {
  constexpr graph operator()() const {
    graph g;
    const tensor images = models::images_placeholder(g), labels = models::labels_placeholder(g);
    const tensor logits = Net(g, images, true);
    const tensor losses = sparse_softmax_cross_entropy(labels, logits, {.reduction = reduction::none});
    g.output("loss", metrics::mean(g, "train_loss", losses));
    g.output("acc", metrics::sparse_categorical_accuracy(g, "train_acc", labels, logits));
    g.output("step", minimize(adam{.learning_rate = schedules::variable(1e-3)}, reduce_mean(losses)));
    return g;
  }
};

template <models::network Net> struct fit_eval {
  constexpr graph operator()() const {
    graph g;
    const tensor images = models::images_placeholder(g), labels = models::labels_placeholder(g);
    const tensor logits = Net(g, images, false);
    g.output("loss", metrics::mean(g, "eval_loss", sparse_softmax_cross_entropy(labels, logits, {.reduction = reduction::none})));
    g.output("acc", metrics::sparse_categorical_accuracy(g, "eval_acc", labels, logits));
    return g;
  }
};

// The network in training mode without the optimizer: each run updates the batch-norm moving
// statistics from its batch (their assigns always run) and changes no weight.
template <models::network Net> struct bn_calibration {
  constexpr graph operator()() const {
    graph g;
    g.output("logits", Net(g, models::images_placeholder(g), true));
    return g;
  }
};

// Images per second of the train steps alone: from the start of each epoch to its last step,
// so validation, checkpoints and summaries at the epoch's end do not count.
class throughput : public callback {
 public:
  explicit throughput(std::int64_t samples_per_epoch, std::int64_t batch) : samples_(samples_per_epoch), batch_(batch) {}
  void on_epoch_begin(fit_context&, std::int64_t) override {
    start_ = clock::now();
    steps_ = 0;
  }
  void on_batch_end(fit_context&, std::int64_t, const fit_logs&) override {
    last_ = clock::now();
    ++steps_;
  }
  void on_epoch_end(fit_context&, std::int64_t, const fit_logs&) override {
    seconds_ += std::chrono::duration<double>(last_ - start_).count();
    images_ += std::min(steps_ * batch_, samples_);
  }
  double images_per_second() const { return seconds_ > 0 ? double(images_) / seconds_ : 0.0; }
  double seconds() const { return seconds_; }
  std::int64_t images() const { return images_; }

 private:
  using clock = std::chrono::steady_clock;
  std::int64_t samples_, batch_, steps_ = 0, images_ = 0;
  double seconds_ = 0;
  clock::time_point start_{}, last_{};
};

// The first layer's kernels as an image per epoch (TensorBoard's Images tab), next to the scalars.
class filter_images : public callback {
 public:
  filter_images(std::filesystem::path logdir, const model_info& m) : logdir_(std::move(logdir)), m_(m) {}
  void on_epoch_end(fit_context& ctx, std::int64_t epoch, const fit_logs&) override {
    if (failed_) return;
    try {
      write(ctx, epoch);
    } catch (const std::exception& e) {  // as callbacks::tensorboard: report once, stop logging, keep training
      failed_ = true;
      std::fprintf(stderr, "fashion_cnn: filter images: %s; no more filter images this run\n", e.what());
      if (writer_) writer_->abandon();
    }
  }
  void on_train_end(fit_context&, const fit_logs&) override {
    if (writer_ && !failed_) writer_->close();
  }

 private:
  void write(fit_context& ctx, std::int64_t epoch) {
    if (!writer_) writer_ = std::make_unique<summary_writer>(logdir_);
    const auto& e = ctx.store->at(m_.first_kernel);
    const float* w = reinterpret_cast<const float*>(e.data.data());
    // At most 64 units (the MLP has 300 28x28 "filters"): the columns [.., :shown] of [kh*kw, units].
    const int shown = std::min(m_.kernel_units, 64), pixels = m_.kernel_h * m_.kernel_w;
    std::vector<float> k(std::size_t(pixels * shown));
    for (int p = 0; p < pixels; ++p)
      for (int u = 0; u < shown; ++u) k[std::size_t(p * shown + u)] = w[std::size_t(p) * std::size_t(m_.kernel_units) + std::size_t(u)];
    const int zoom = m_.kernel_h >= 16 ? 2 : 24 / m_.kernel_h;
    // Its own tag: the kernel's histogram (the tensorboard callback) is tagged with the variable's
    // name, and one tag holding two kinds of summary shows only one of them.
    writer_->image(std::string(m_.first_kernel) + "/filters", filter_grid(k, m_.kernel_h, m_.kernel_w, 1, shown, zoom), epoch);
    writer_->flush();
  }

  std::filesystem::path logdir_;
  model_info m_;
  std::unique_ptr<summary_writer> writer_;
  bool failed_ = false;
};

double test_accuracy_of(auto& infer, const data::dataset& test) {
  data::pipeline pipe(test, {.batch_size = 1000, .shuffle = false});
  std::int64_t right = 0, seen = 0;
  for (const data::batch& b : pipe.epoch(0)) {
    const auto predictions = infer.run({{"images", b.features}}).template get<std::int32_t>("predictions").flat();
    const auto* labels = static_cast<const std::int32_t*>(b.labels.data);
    for (std::int64_t i = 0; i < b.size; ++i) right += predictions[std::size_t(i)] == labels[i];
    seen += b.size;
  }
  return seen ? double(right) / double(seen) : 0.0;
}

inline std::int64_t parameter_count(const variables& store) {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < store.size(); ++i)
    if (store[i].trainable) n += store[i].shape.elements();
  return n;
}

// Loads Fashion-MNIST, trains network Net with fit() (validation, TensorBoard, checkpoints,
// resume), tests it with the inference graph over the same variables. The last two lines printed
// are test_accuracy and train_images_per_second. Returns the exit status.
template <models::network Net> int train_and_test(const flags& f, const model_info& m) {
  using train_graph = fit_train<Net>;
  using eval_graph = fit_eval<Net>;
  using infer_graph = models::classifier_infer<Net>;
  const std::int64_t epochs = f.epochs > 0 ? f.epochs : m.default_epochs;
  const std::int64_t batch_size = f.batch > 0 ? f.batch : m.default_batch;

  auto [full_train, full_test] = data::fashion_mnist(255.0f, f.data_dir);
  auto [train_set, validation_set] = full_train.split(f.validation_split, f.seed);
  if (f.train_images > 0 && f.train_images < train_set.size()) train_set = train_set.split_count(train_set.size() - f.train_images, f.seed).train;
  data::dataset test_set = full_test;
  if (f.test_images > 0 && f.test_images < test_set.size()) test_set = test_set.split_count(test_set.size() - f.test_images, f.seed).train;

  // A batch beyond the data would only allocate for samples that do not exist.
  if (batch_size > train_set.size())
    throw error("--batch " + std::to_string(batch_size) + " is larger than the " + std::to_string(train_set.size()) +
                " training images (after --validation-split and --train-images)");
  std::vector<data::stage> augmentation;
  if (f.augment) augmentation.push_back(data::random_flip_left_right());
  data::pipeline train_pipe(train_set, {.batch_size = batch_size, .seed = f.seed}, std::move(augmentation));
  std::unique_ptr<data::pipeline> validation_pipe;
  if (validation_set.size() > 0) validation_pipe = std::make_unique<data::pipeline>(validation_set, data::pipeline_options{.batch_size = 500, .shuffle = false});

  // The weights are drawn from --seed before the executors bind the variables.
  variables store;
  models::seed_variables<train_graph, eval_graph, infer_graph>(store, f.seed);
  auto train = compile<cpu>(train_graph{}, &store);
  auto eval = compile<cpu>(eval_graph{}, &store);
  auto infer = compile<cpu>(infer_graph{}, &store);

  std::printf("model: %s (%s), %lld trainable parameters\n", m.name, m.description, static_cast<long long>(parameter_count(store)));
  std::printf("data: %lld train, %lld validation, %lld test images; batch %lld, epochs %lld, seed %llu%s\n",
              static_cast<long long>(train_set.size()), static_cast<long long>(validation_set.size()), static_cast<long long>(test_set.size()),
              static_cast<long long>(batch_size), static_cast<long long>(epochs), static_cast<unsigned long long>(f.seed),
              f.augment ? ", random flips" : "");

  std::vector<callback*> cbs;
  throughput speed(train_set.size(), batch_size);
  cbs.push_back(&speed);
  const double peak = f.learning_rate > 0 ? f.learning_rate : m.default_learning_rate;
  callbacks::learning_rate_scheduler lr(f.lr_schedule == "cosine" ? callbacks::learning_rate_scheduler::cosine(peak)
                                                                  : callbacks::learning_rate_scheduler::function([peak](std::int64_t, std::int64_t) { return peak; }));
  cbs.push_back(&lr);
  std::printf("optimizer: Adam, learning rate %g%s\n", peak, f.lr_schedule == "cosine" ? ", cosine decay to 0 over the run" : "");
  std::unique_ptr<callbacks::tensorboard> tb;
  std::unique_ptr<filter_images> filters;
  if (!f.logdir.empty()) {
    tb = std::make_unique<callbacks::tensorboard>(f.logdir, callbacks::tensorboard_options{.update_freq = 100, .histograms = {m.first_kernel}});
    filters = std::make_unique<filter_images>(std::filesystem::path(f.logdir) / "train", m);
    cbs.push_back(tb.get());
    cbs.push_back(filters.get());
  }
  // A NaN or infinite loss ends the run with an error naming the epoch, batch and step.
  callbacks::terminate_on_nan stop_on_nan;
  cbs.push_back(&stop_on_nan);
  std::unique_ptr<callbacks::checkpoint> ckpt;
  std::int64_t initial_epoch = 0;
  if (!f.checkpoint_dir.empty()) {
    // Without --resume, a directory holding checkpoints makes fit() refuse before the first epoch.
    ckpt = std::make_unique<callbacks::checkpoint>(f.checkpoint_dir, f.keep_checkpoints);
    if (f.resume) {
      const std::int64_t done = ckpt->restore(store);  // the newest valid checkpoint (a bad one is reported and skipped)
      initial_epoch = std::min(done, epochs);
      if (done > 0)
        std::printf("resumed from %s: %lld epoch%s done%s\n", ckpt->restored()->file.string().c_str(), static_cast<long long>(done),
                    done == 1 ? "" : "s", done >= epochs ? ", nothing left to train" : "");
      else std::printf("no checkpoint in %s: starting from scratch\n", f.checkpoint_dir.c_str());
    }
    cbs.push_back(ckpt.get());
  }

  fit_options o{.epochs = epochs, .initial_epoch = initial_epoch, .metrics = {"loss", "acc"}, .features = "images", .labels = "labels",
                .callbacks = cbs};
  if (validation_pipe) o.validation = validation_data(eval, *validation_pipe);
  if (initial_epoch < epochs) fit(train, train_pipe, o);  // a checkpoint past --epochs: only the test is left

  // The moving statistics are an average over the last ~100 steps (momentum 0.99) of weights that
  // Adam keeps changing; heads that average over space (GAP) are sensitive to the lag. One pass
  // over the training images with the final weights (844 updates at batch 64) replaces it.
  if (f.recalibrate_bn) {
    auto calibrate = compile<cpu>(bn_calibration<Net>{}, &store);
    data::pipeline calibration_pipe(train_set, {.batch_size = batch_size, .seed = f.seed + 1});
    for (const data::batch& b : calibration_pipe.epoch(0)) calibrate.run({{"images", b.features}});
    if (validation_pipe) std::printf("recalibrated batch norm: validation accuracy %.4f\n", test_accuracy_of(infer, validation_set));
  }
  const double accuracy = test_accuracy_of(infer, test_set);
  std::printf("train_seconds: %.2f (%lld images in the train steps)\n", speed.seconds(), static_cast<long long>(speed.images()));
  std::printf("test_accuracy: %.4f\n", accuracy);
  std::printf("train_images_per_second: %.1f\n", speed.images_per_second());
  std::fflush(stdout);
  // After the results are printed: a failing log directory must not hide them.
  if (tb && tb->failure().empty()) {
    try {
      summary_writer test_writer(std::filesystem::path(f.logdir) / "test");
      test_writer.scalar("test_accuracy", accuracy, epochs);
      try {
        test_writer.close();
      } catch (...) {
        test_writer.abandon();  // reported once, by the rethrow below
        throw;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fashion_cnn: writing test/ summaries failed: %s (the results above stand)\n", e.what());
    }
  }
  if (f.min_test_accuracy >= 0 && accuracy < f.min_test_accuracy) {
    std::fprintf(stderr, "fashion_cnn: test accuracy %.4f is below --min-test-accuracy %.4f\n", accuracy, f.min_test_accuracy);
    return 1;
  }
  return 0;
}

// One function per network, each in the translation unit that compiles its graphs:
int run_cnn(const flags& f);  // fashion_cnn_small.cpp
int run_mlp(const flags& f);  // fashion_cnn_small.cpp
// fashion_cnn_heads.cpp, compiled once per variant with -DFASHION_HEAD=gap|fc -DFASHION_DROPOUT=0|1
template <models::head H, bool Dropout> int run_conv_head(const flags& f);
// fashion_cnn_resnet.cpp, compiled once per depth in examples/meson.build's resnet_depths (which
// it passes to fashion_cnn.cpp as FASHION_RESNET_DEPTHS) with -DFASHION_RESNET_BLOCKS=N
template <int Blocks> int run_resnet(const flags& f);

}  // namespace fashion_example
