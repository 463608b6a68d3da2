// fit(): Keras' training loop over a compiled train step.
//
//   auto train = compile<cpu>(train_step);                 // outputs "loss", "acc" (running metrics)
//   auto eval = compile<cpu>(eval_step, &train.vars());    // same weights, its own metric state
//   callbacks::tensorboard tb("logs/run1");
//   callbacks::checkpoint ckpt("ckpt", /*keep_last*/ 3);
//   callbacks::early_stopping stop({.monitor = "val_loss", .patience = 3});
//   history h = fit(train, train_pipe, {.epochs = 10, .initial_epoch = ckpt.restore(train.vars()),
//                                       .metrics = {"loss", "acc"}, .validation = {eval, val_pipe},
//                                       .callbacks = {&tb, &ckpt, &stop}});
//   h["val_acc"].back();
//
// Per epoch: the metric state of the train graph is zeroed (metrics::reset_all), every batch of
// the pipeline's epoch is fed to the placeholders `features` and `labels` ("x", "y"), and the
// scalar outputs named in `metrics` are read after each step; their values after the epoch's last
// step are the epoch's logs. Log running metrics to get epoch averages as Keras shows them:
// metrics::mean(g, "loss", per-sample losses) (reduction::none) is the mean over the epoch's
// samples; a metric of the batch-mean loss would weigh a last, partial batch like a full one.
// Validation then zeroes the eval graph's metric state, runs over the whole validation pipeline
// and adds `val_<name>` for each of its outputs. Callbacks see the logs; history keeps them per
// epoch.
//
// fit is not on the graph's hot path: it costs a few name comparisons and virtual calls per step.
// It works with any executor whose run() returns host outputs and whose vars() returns the host
// store brought up to date (the executor contract of runtime/binding.hpp; the CUDA executor
// pulls the variables its device changed and marks them edited, so host edits reach the device
// at the next step). fit takes vars() again before the callbacks of each epoch's beginning and
// end and of the end of training, so checkpoints, early stopping and TensorBoard read the
// device's state and their writes (restored weights) reach it; per step it only tells the
// executor which variable the learning-rate scheduler wrote (mark_host_written).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>
#include "../data/pipeline.hpp"
#include "../io/checkpoint_directory.hpp"
#include "../io/tensorboard.hpp"
#include "../runtime/error.hpp"
#include "../runtime/variables.hpp"
#include "../runtime/view.hpp"
#include "metrics.hpp"
#include "progress.hpp"

namespace kiln {

// What fit can drive: run(feeds) returning outputs by name, and the variable store.
template <class E>
concept fit_executor = requires(E& e, std::span<const feed> feeds, std::string_view name) {
  { e.run(feeds)[name] } -> std::convertible_to<const value_ref&>;
  { e.vars() } -> std::same_as<variables&>;
};

namespace fit_detail {

inline double scalar_of(const value_ref& v, std::string_view name) {
  if (v.shape.elements() != 1)
    throw error("kiln: fit: output '" + std::string(name) + "' is " + std::string(name_of(v.type)) + " " + to_string(v.shape) +
                "; only scalar outputs can be logged");
  return detail::with_ctype(v.type, [&](auto zero) { return double(*static_cast<const decltype(zero)*>(v.data)); });
}

}  // namespace fit_detail

// A non-owning, type-erased reference to an executor (no allocation per step).
class step_runner {
 public:
  step_runner() = default;
  template <fit_executor E>
  step_runner(E& exe)  // NOLINT: converts implicitly, so options take executors directly
      : object_(&exe),
        run_([](void* o, std::span<const feed> feeds, std::span<const std::string> names, std::span<double> out) {
          const auto& outputs = static_cast<E*>(o)->run(feeds);
          for (std::size_t i = 0; i < names.size(); ++i) out[i] = fit_detail::scalar_of(outputs[names[i]], names[i]);
        }),
        vars_([](void* o) -> variables& { return static_cast<E*>(o)->vars(); }),
        host_written_([](void* o, std::string_view name) {
          if constexpr (requires(E& e) { e.mark_host_written(name); }) static_cast<E*>(o)->mark_host_written(name);
        }) {
    if constexpr (requires { typename E::program_type; }) metric_state_ = metrics::state_variables<typename E::program_type>();
  }

  bool empty() const { return object_ == nullptr; }
  // Runs one step and reads the scalar outputs `names` into `out`.
  void run(std::span<const feed> feeds, std::span<const std::string> names, std::span<double> out) const { run_(object_, feeds, names, out); }
  // The host store, up to date, every variable marked edited (see the executor contract).
  variables& vars() const { return vars_(object_); }
  // The host copy of `name` was edited through a pointer kept from an earlier vars().
  void host_written(std::string_view name) const { host_written_(object_, name); }
  // Zeroes the metric state of the executor's graph.
  void reset_metrics() const {
    for (const std::string& n : metric_state_)
      if (variables::entry* e = vars().find(n)) metrics::detail::value_of(*e) = 0;
  }
  const std::vector<std::string>& metric_state() const { return metric_state_; }

 private:
  void* object_ = nullptr;
  void (*run_)(void*, std::span<const feed>, std::span<const std::string>, std::span<double>) = nullptr;
  variables& (*vars_)(void*) = nullptr;
  void (*host_written_)(void*, std::string_view) = nullptr;
  std::vector<std::string> metric_state_;
};

// The evaluation step and its data; fit logs its outputs as val_<name>.
struct validation_data {
  step_runner executor{};
  data::pipeline* data = nullptr;
  std::vector<std::string> metrics{};  // outputs to read; empty: fit's metrics
  std::int64_t steps = 0;              // batches per validation; 0: the whole pipeline epoch

  validation_data() = default;
  template <fit_executor E>
  validation_data(E& exe, data::pipeline& d, std::vector<std::string> names = {}, std::int64_t s = 0)
      : executor(exe), data(&d), metrics(std::move(names)), steps(s) {}
  bool empty() const { return executor.empty(); }
};

// Shared by fit and its callbacks.
// `store` is the train executor's host store, brought up to date before the callbacks of
// on_train_begin, on_epoch_begin, on_epoch_end and on_train_end; writes to it then reach the
// device. In on_batch_end it is not refreshed (that would copy every variable every step): a
// callback that writes a variable there calls host_written(name) afterwards.
struct fit_context {
  variables* store = nullptr;      // the train executor's variables
  std::int64_t epochs = 0;         // fit's `epochs`: the epoch index to stop before
  std::int64_t steps_per_epoch = 0;
  std::int64_t epoch = 0;          // the current epoch (0-based)
  std::int64_t global_step = 0;    // train steps taken since epoch 0 (counts the skipped epochs on resume)
  bool stop_training = false;      // set by a callback: fit ends after the current step's epoch
  const step_runner* train = nullptr;

  void host_written(std::string_view name) const {
    if (train) train->host_written(name);
  }
};

// Keras callbacks, with fit's context in front. Not on the graph's hot path.
class callback {
 public:
  virtual ~callback() = default;
  virtual void on_train_begin(fit_context&) {}
  virtual void on_epoch_begin(fit_context&, std::int64_t /*epoch*/) {}
  virtual void on_batch_end(fit_context&, std::int64_t /*batch within the epoch*/, const fit_logs&) {}
  virtual void on_epoch_end(fit_context&, std::int64_t /*epoch*/, const fit_logs&) {}
  virtual void on_train_end(fit_context&, const fit_logs& /*the last epoch's*/) {}
  // Callbacks that save the training state (checkpoints) run first at the end of an epoch and of
  // training, whatever their place in fit_options::callbacks: a failing logger (a full disk under
  // TensorBoard) must not end fit() before the epoch that just trained is saved.
  virtual bool saves_training_state() const { return false; }
};

// Keras' History: per-epoch values of every log, in the order they first appeared.
class history {
 public:
  std::vector<std::int64_t> epochs;  // the epoch index of each entry

  const std::vector<double>& operator[](std::string_view key) const {
    for (const auto& [k, v] : values_)
      if (k == key) return v;
    std::string known;
    for (const auto& kv : values_) known += (known.empty() ? "" : ", ") + kv.first;
    throw error("kiln: history has no '" + std::string(key) + "'; it has: " + (known.empty() ? "(nothing)" : known));
  }
  bool contains(std::string_view key) const {
    for (const auto& kv : values_)
      if (kv.first == key) return true;
    return false;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& kv : values_) k.push_back(kv.first);
    return k;
  }
  std::size_t size() const { return epochs.size(); }

  // A key first seen at a later epoch gets NaN for the earlier ones, so every column has size().
  void append(std::int64_t epoch, const fit_logs& logs) {
    for (const auto& [name, value] : logs) {
      std::vector<double>* column = nullptr;
      for (auto& kv : values_)
        if (kv.first == name) column = &kv.second;
      if (!column) {
        values_.emplace_back(name, std::vector<double>(epochs.size(), std::numeric_limits<double>::quiet_NaN()));
        column = &values_.back().second;
      }
      column->push_back(value);
    }
    epochs.push_back(epoch);
    for (auto& kv : values_)
      if (kv.second.size() < epochs.size()) kv.second.push_back(std::numeric_limits<double>::quiet_NaN());
  }

 private:
  std::vector<std::pair<std::string, std::vector<double>>> values_;
};

struct fit_options {
  std::int64_t epochs = 1;            // train until this epoch index (Keras: epochs)
  std::int64_t initial_epoch = 0;     // resume here (e.g. from callbacks::checkpoint::restore)
  std::int64_t steps_per_epoch = 0;   // 0: the pipeline's whole epoch
  std::vector<std::string> metrics{"loss"};  // scalar outputs of the train step to log
  std::string features = "x";         // placeholder fed with the batch's features
  std::string labels = "y";           // ... and with its labels
  validation_data validation{};
  std::vector<callback*> callbacks{};
  int verbose = 1;                    // 0 silent; 1 a bar on a terminal, else a line per epoch; 2 a line per epoch
  progress_options progress{};        // where and how the progress goes
  bool reset_metrics = true;          // zero the graphs' metric state per epoch / validation
};

namespace fit_detail {

// Runs `steps` batches of epoch `epoch` of `data` through `exe`, leaving the last values in `out`.
// `after_step(batch)` runs after each step and may return false to stop early.
template <class AfterStep>
std::int64_t run_epoch(const step_runner& exe, data::pipeline& data, std::int64_t epoch, std::int64_t steps, const std::string& features,
                       const std::string& labels, std::span<const std::string> names, std::span<double> out, AfterStep&& after_step) {
  data.begin_epoch(epoch);
  std::array<feed, 2> feeds{};
  std::int64_t done = 0;
  while (done < steps) {
    const data::batch* b = data.next();
    if (!b) break;
    feeds[0] = {features, b->features};
    feeds[1] = {labels, b->labels};
    exe.run(feeds, names, out);
    ++done;
    if (!after_step(done - 1)) break;
  }
  return done;
}

inline std::int64_t steps_of(data::pipeline& data, std::int64_t requested, const char* what) {
  const std::int64_t available = data.batches_per_epoch();
  if (available <= 0)
    throw error(std::string("kiln: fit: the ") + what + " pipeline yields no batch (" + std::to_string(data.samples()) + " samples, batch size " +
                std::to_string(data.options().batch_size) + (data.options().drop_remainder ? ", drop_remainder" : "") + ")");
  if (requested < 0 || requested > available)
    throw error(std::string("kiln: fit: ") + what + " steps " + std::to_string(requested) + " is not in [0, " + std::to_string(available) +
                "], the batches of one pipeline epoch (0: all of them)");
  return requested == 0 ? available : requested;
}

}  // namespace fit_detail

inline history fit(const step_runner& train, data::pipeline& data, const fit_options& o) {
  if (train.empty()) throw error("kiln: fit: no train executor");
  if (o.initial_epoch < 0 || o.epochs < o.initial_epoch)
    throw error("kiln: fit: needs 0 <= initial_epoch <= epochs, got initial_epoch " + std::to_string(o.initial_epoch) + ", epochs " +
                std::to_string(o.epochs));
  if (o.metrics.empty()) throw error("kiln: fit: `metrics` names no output to log (e.g. {\"loss\"})");
  for (const callback* c : o.callbacks)
    if (!c) throw error("kiln: fit: a callback pointer is null");
  const std::int64_t steps = fit_detail::steps_of(data, o.steps_per_epoch, "train");
  const bool validate = !o.validation.empty();
  if (validate && !o.validation.data) throw error("kiln: fit: the validation has an executor but no pipeline");
  const std::int64_t val_steps = validate ? fit_detail::steps_of(*o.validation.data, o.validation.steps, "validation") : 0;
  const std::vector<std::string>& val_names = validate && !o.validation.metrics.empty() ? o.validation.metrics : o.metrics;
  std::vector<std::string> val_keys;
  for (const auto& n : val_names) val_keys.push_back("val_" + n);

  fit_context ctx;
  ctx.train = &train;
  ctx.store = &train.vars();
  ctx.epochs = o.epochs;
  ctx.steps_per_epoch = steps;
  ctx.epoch = o.initial_epoch;
  ctx.global_step = o.initial_epoch * steps;

  std::vector<double> values(o.metrics.size()), val_values(val_names.size());
  fit_logs step_logs, epoch_logs;
  history h;
  std::optional<progress_bar> bar;
  if (o.verbose > 0) {
    progress_options p = o.progress;
    if (o.verbose >= 2) p.mode = progress_mode::plain;
    bar.emplace(std::move(p));
  }

  std::vector<callback*> savers_first = o.callbacks;
  std::stable_partition(savers_first.begin(), savers_first.end(), [](const callback* c) { return c->saves_training_state(); });

  for (callback* c : o.callbacks) c->on_train_begin(ctx);
  for (std::int64_t epoch = o.initial_epoch; epoch < o.epochs && !ctx.stop_training; ++epoch) {
    ctx.epoch = epoch;
    ctx.store = &train.vars();
    if (o.reset_metrics) train.reset_metrics();
    for (callback* c : o.callbacks) c->on_epoch_begin(ctx, epoch);
    if (bar) bar->begin_epoch(epoch, o.epochs, steps);
    step_logs.clear();
    fit_detail::run_epoch(train, data, epoch, steps, o.features, o.labels, o.metrics, values, [&](std::int64_t batch) {
      for (std::size_t i = 0; i < values.size(); ++i) step_logs.set(o.metrics[i], values[i]);
      ++ctx.global_step;
      for (callback* c : o.callbacks) c->on_batch_end(ctx, batch, step_logs);
      if (bar) bar->update(batch + 1, step_logs);
      return !ctx.stop_training;
    });
    epoch_logs = step_logs;
    if (validate) {
      const step_runner& val = o.validation.executor;
      if (o.reset_metrics) val.reset_metrics();
      fit_detail::run_epoch(val, *o.validation.data, epoch, val_steps, o.features, o.labels, val_names, val_values,
                            [](std::int64_t) { return true; });
      for (std::size_t i = 0; i < val_values.size(); ++i) epoch_logs.set(val_keys[i], val_values[i]);
    }
    if (bar) bar->end_epoch(epoch_logs);
    h.append(epoch, epoch_logs);
    ctx.store = &train.vars();
    for (callback* c : savers_first) c->on_epoch_end(ctx, epoch, epoch_logs);
  }
  ctx.store = &train.vars();
  for (callback* c : savers_first) c->on_train_end(ctx, epoch_logs);
  return h;
}

template <fit_executor E>
history fit(E& train, data::pipeline& data, const fit_options& options = {}) {
  return fit(step_runner(train), data, options);
}

namespace callbacks {

// ---- Learning-rate scheduler ----------------------------------------------------------------------

// Keras' LearningRateScheduler, per step: before each train step, writes rate(step, total_steps)
// into the scalar variable that a schedules::variable learning rate reads. `step` counts the
// updates already applied since epoch 0 (a resumed fit continues the curve where it left off),
// `total_steps` = epochs x steps per epoch. The compiled train step does not change, so one
// program serves any number of epochs.
class learning_rate_scheduler : public callback {
 public:
  using function = std::function<double(std::int64_t step, std::int64_t total_steps)>;

  explicit learning_rate_scheduler(function rate, std::string variable = "learning_rate")
      : rate_(std::move(rate)), variable_(std::move(variable)) {
    if (!rate_) throw error("kiln: learning_rate_scheduler: no rate function");
  }

  // peak * ((1 - alpha) * 0.5 * (1 + cos(pi * step / total)) + alpha): Keras' CosineDecay with
  // decay_steps = the whole fit.
  static function cosine(double peak, double alpha = 0) {
    return [peak, alpha](std::int64_t step, std::int64_t total) {
      const double f = total > 0 ? std::min(1.0, double(step) / double(total)) : 1.0;
      return peak * ((1 - alpha) * 0.5 * (1 + std::cos(std::numbers::pi * f)) + alpha);
    };
  }

  // Finds the variable once per fit, not per step.
  void on_train_begin(fit_context& ctx) override {
    if (!ctx.store) throw error("kiln: learning_rate_scheduler: fit gave no variable store");
    const tensor_view<double> v = ctx.store->get<double>(variable_);
    if (v.shape().rank != 0)
      throw error("kiln: learning_rate_scheduler: variable '" + variable_ + "' is not a scalar (schedules::variable makes one)");
    slot_ = v.data();
    apply(ctx);
  }
  void on_batch_end(fit_context& ctx, std::int64_t, const fit_logs&) override { apply(ctx); }
  double current() const { return current_; }  // the rate of the coming (or last) step

 private:
  void apply(const fit_context& ctx) {
    const double r = rate_(ctx.global_step, ctx.epochs * ctx.steps_per_epoch);
    if (!std::isfinite(r) || r < 0)
      throw error("kiln: learning_rate_scheduler: the rate at step " + std::to_string(ctx.global_step) + " is " + std::to_string(r) +
                  "; it must be finite and >= 0");
    *slot_ = r;
    current_ = r;
    ctx.host_written(variable_);  // the executor sends it to the device before the next step
  }

  function rate_;
  std::string variable_;
  double* slot_ = nullptr;
  double current_ = 0;
};

// ---- TensorBoard ------------------------------------------------------------------------------------

struct tensorboard_options {
  std::int64_t update_freq = 0;              // 0: per epoch only; N: also the train logs every N steps, as batch_<name>
  std::vector<std::string> histograms{};     // f32/f64 variables whose histograms are written per epoch
  std::int64_t histogram_freq = 1;           // every this many epochs (epoch % freq == 0, as Keras)
};

// Keras' TensorBoard callback: <logdir>/train and <logdir>/validation event files, scalars
// epoch_<name> at step = epoch (validation logs without their val_ prefix, so TensorBoard draws
// train and validation curves of a metric in one chart), histograms tagged with the variable name.
class tensorboard : public callback {
 public:
  explicit tensorboard(std::filesystem::path logdir, tensorboard_options options = {}) : logdir_(std::move(logdir)), options_(std::move(options)) {
    if (options_.update_freq < 0 || options_.histogram_freq < 0)
      throw error("kiln: tensorboard callback: update_freq and histogram_freq must be >= 0");
  }

  // A log directory that cannot be created fails here, before the first epoch.
  void on_train_begin(fit_context&) override {
    failure_.clear();
    train_ = std::make_unique<summary_writer>(logdir_ / "train");
    validation_.reset();
  }
  void on_batch_end(fit_context& ctx, std::int64_t, const fit_logs& logs) override {
    if (options_.update_freq == 0 || ctx.global_step % options_.update_freq != 0 || !failure_.empty()) return;
    guarded([&] {
      for (const auto& [name, v] : logs) train_writer().scalar("batch_" + name, v, ctx.global_step);
    });
  }
  void on_epoch_end(fit_context& ctx, std::int64_t epoch, const fit_logs& logs) override {
    if (failure_.empty()) guarded([&] { write_epoch(ctx, epoch, logs); });
  }
  void on_train_end(fit_context&, const fit_logs&) override {
    if (failure_.empty()) guarded([&] {
      if (train_) train_->close();
      if (validation_) validation_->close();
    });
  }

  // The event files of the last fit (empty before one).
  std::filesystem::path train_file() const { return train_ ? train_->path() : std::filesystem::path{}; }
  std::filesystem::path validation_file() const { return validation_ ? validation_->path() : std::filesystem::path{}; }
  // Why logging stopped during the last fit (a write or flush that failed); empty if it did not.
  const std::string& failure() const { return failure_; }

 private:
  // Logging must never cost training results: a failing write (disk full, log directory removed)
  // is reported once on stderr and turns the callback off for the rest of the fit, which goes on
  // training and checkpointing. The writers drop what they buffered, so their destructors do not
  // report the same failure again.
  template <class F>
  void guarded(F&& write) {
    try {
      write();
    } catch (const std::exception& e) {
      failure_ = e.what();
      std::fprintf(stderr, "kiln: tensorboard callback: %s; TensorBoard logging is off for the rest of this run (training continues)\n",
                   failure_.c_str());
      if (train_) train_->abandon();
      if (validation_) validation_->abandon();
    }
  }

  void write_epoch(fit_context& ctx, std::int64_t epoch, const fit_logs& logs) {
    for (const auto& [name, v] : logs) {
      if (name.starts_with("val_")) {
        if (!validation_) validation_ = std::make_unique<summary_writer>(logdir_ / "validation");
        validation_->scalar("epoch_" + name.substr(4), v, epoch);
      } else {
        train_writer().scalar("epoch_" + name, v, epoch);
      }
    }
    if (options_.histogram_freq > 0 && epoch % options_.histogram_freq == 0)
      for (const std::string& name : options_.histograms) {
        const variables::entry& e = ctx.store->at(name);
        const std::size_t n = std::size_t(e.shape.elements());
        if (e.type == dtype::f32) train_writer().histogram(name, std::span<const float>(reinterpret_cast<const float*>(e.data.data()), n), epoch);
        else if (e.type == dtype::f64) train_writer().histogram(name, std::span<const double>(reinterpret_cast<const double*>(e.data.data()), n), epoch);
        else throw error("kiln: tensorboard callback: variable '" + name + "' is " + std::string(name_of(e.type)) + "; histograms need f32 or f64");
      }
    train_writer().flush();
    if (validation_) validation_->flush();
  }

  summary_writer& train_writer() {
    if (!train_) train_ = std::make_unique<summary_writer>(logdir_ / "train");
    return *train_;
  }

  std::filesystem::path logdir_;
  tensorboard_options options_;
  std::unique_ptr<summary_writer> train_, validation_;
  std::string failure_;
};

// ---- checkpoints ------------------------------------------------------------------------------------

// Saves the whole variable store (weights, optimizer slots and counters, metric state) every
// `every` epochs as <dir>/ckpt-<epochs done>.kiln, keeping the newest `keep_last`. The checkpoint
// step is the number of epochs completed, so restore() returns the epoch to resume from.
// Before the first epoch (on_train_begin) the directory must be writable and hold no checkpoint
// newer than fit's initial_epoch (another run's, or a run that should have been resumed): an
// error then, not a lost hour of training or someone else's files deleted by keep-last-K. Pass
// io::existing_checkpoints::overwrite to delete such files instead. See io/checkpoint_directory.hpp.
class checkpoint : public callback {
 public:
  explicit checkpoint(std::filesystem::path dir, int keep_last = 5, std::int64_t every = 1,
                      io::existing_checkpoints existing = io::existing_checkpoints::refuse)
      : manager_(std::move(dir), keep_last), every_(every), existing_(existing) {
    if (every_ < 1) throw error("kiln: checkpoint callback: `every` must be >= 1 epoch, got " + std::to_string(every_));
  }

  void on_train_begin(fit_context& ctx) override { manager_.prepare(ctx.epoch, existing_); }
  void on_epoch_end(fit_context& ctx, std::int64_t epoch, const fit_logs&) override {
    if ((epoch + 1) % every_ == 0) manager_.save(*ctx.store, epoch + 1);
  }
  bool saves_training_state() const override { return true; }

  // Restores the newest valid checkpoint into `store` and returns the epoch to resume from (fit's
  // initial_epoch, = the epochs done); 0 when the directory holds none. Unusable newer files are
  // reported and moved aside (checkpoint_manager::restore_latest); restored() names the file used.
  // Throws, leaving the store as it was, if the checkpoint does not match the store.
  std::int64_t restore(variables& store) { return manager_.restore_latest(store).value_or(0); }
  const std::optional<io::checkpoint_manager::restored_checkpoint>& restored() const { return manager_.restored(); }

  io::checkpoint_manager& manager() { return manager_; }

 private:
  io::checkpoint_manager manager_;
  std::int64_t every_;
  io::existing_checkpoints existing_;
};

// ---- TerminateOnNaN -------------------------------------------------------------------------------

// Thrown by terminate_on_nan: where training met a non-finite logged value.
class non_finite_error : public error {
 public:
  non_finite_error(const std::string& message, std::string output, double value, std::int64_t epoch, std::int64_t batch, std::int64_t global_step)
      : error(message), output(std::move(output)), value(value), epoch(epoch), batch(batch), global_step(global_step) {}
  std::string output;  // the log's name ("loss", "val_loss")
  double value;        // NaN or +-infinity
  std::int64_t epoch, batch, global_step;  // batch -1: found in the epoch's validation logs
};

// Keras' TerminateOnNaN, stricter: after every train step (and every validation), a NaN or
// infinite logged output ends fit() with a non_finite_error naming the output, the epoch, the
// batch and the global step. It throws instead of setting stop_training so that the epoch's end
// never runs: no checkpoint of non-finite weights is written over a good one, and a program that
// does not catch it exits non-zero. Put it in fit_options::callbacks; it costs one isfinite per
// logged output per step. To find the op that produced the first non-finite value, re-run the
// batch through first_non_finite<Graph> (train/check_numerics.hpp).
class terminate_on_nan : public callback {
 public:
  void on_batch_end(fit_context& ctx, std::int64_t batch, const fit_logs& logs) override { check(ctx, batch, logs); }
  void on_epoch_end(fit_context& ctx, std::int64_t, const fit_logs& logs) override { check(ctx, -1, logs); }

 private:
  static void check(const fit_context& ctx, std::int64_t batch, const fit_logs& logs) {
    for (const auto& [name, v] : logs) {
      if (std::isfinite(v)) continue;
      const std::string what = std::isnan(v) ? "NaN" : (v > 0 ? "+infinity" : "-infinity");
      const std::string where = batch >= 0 ? "epoch " + std::to_string(ctx.epoch) + ", batch " + std::to_string(batch) + " (global step " +
                                                 std::to_string(ctx.global_step) + ")"
                                           : "the validation after epoch " + std::to_string(ctx.epoch) + " (global step " +
                                                 std::to_string(ctx.global_step) + ")";
      throw non_finite_error("kiln: terminate_on_nan: output '" + name + "' is " + what + " at " + where +
                                 "; training stopped before this epoch was checkpointed (the weights are probably no longer finite). "
                                 "first_non_finite<Graph>(batch feeds, store) of train/check_numerics.hpp names the op that produced it; "
                                 "then fix the input or resume from the last checkpoint with a lower learning rate",
                             name, v, ctx.epoch, batch, ctx.global_step);
    }
  }
};

// ---- early stopping ---------------------------------------------------------------------------------

enum class monitor_mode { automatic, min, max };

struct early_stopping_options {
  std::string monitor = "val_loss";
  double min_delta = 0;               // a smaller change is no improvement
  std::int64_t patience = 0;          // epochs without improvement before stopping
  monitor_mode mode = monitor_mode::automatic;  // automatic: max when the name contains "acc" or "auc", else min
  std::optional<double> baseline{};   // wait stays counting until the monitor also beats this
  bool restore_best_weights = false;  // at the end, put back the store as it was after the best epoch
  std::int64_t start_from_epoch = 0;  // epochs before this one are not monitored (warm-up)
};

// Keras 3's EarlyStopping, step for step: wait += 1 each monitored epoch; an improvement
// (monitor - min_delta beats the best in the mode's direction) records the best and resets wait
// (if the baseline is beaten too); otherwise, once wait >= patience and epoch > 0, training stops.
// Restored weights are the whole variable store (weights, optimizer state, metric state).
class early_stopping : public callback {
 public:
  explicit early_stopping(early_stopping_options options = {}) : options_(std::move(options)) {
    if (options_.patience < 0) throw error("kiln: early_stopping: patience must be >= 0");
    const bool maximize = options_.mode == monitor_mode::max ||
                          (options_.mode == monitor_mode::automatic &&
                           (options_.monitor.find("acc") != std::string::npos || options_.monitor.find("auc") != std::string::npos));
    sign_ = maximize ? 1.0 : -1.0;
  }

  void on_train_begin(fit_context&) override {
    wait_ = 0;
    stopped_epoch_ = -1;
    best_epoch_ = -1;
    best_ = -sign_ * std::numeric_limits<double>::infinity();
    best_weights_.clear();
  }

  void on_epoch_end(fit_context& ctx, std::int64_t epoch, const fit_logs& logs) override {
    const double* current = logs.find(options_.monitor);
    if (!current) {
      std::string known;
      for (const auto& kv : logs) known += (known.empty() ? "" : ", ") + kv.first;
      throw error("kiln: early_stopping monitors '" + options_.monitor + "', which the logs do not have; they have: " +
                  (known.empty() ? "(nothing)" : known));
    }
    if (epoch < options_.start_from_epoch) return;
    if (options_.restore_best_weights && best_weights_.empty()) {
      snapshot(*ctx.store);
      best_epoch_ = epoch;
    }
    ++wait_;
    if (improves(*current, best_)) {
      best_ = *current;
      best_epoch_ = epoch;
      if (options_.restore_best_weights) snapshot(*ctx.store);
      if (!options_.baseline || improves(*current, *options_.baseline)) wait_ = 0;
      return;
    }
    if (wait_ >= options_.patience && epoch > 0) {
      stopped_epoch_ = epoch;
      ctx.stop_training = true;
    }
  }

  void on_train_end(fit_context& ctx, const fit_logs&) override {
    if (options_.restore_best_weights && !best_weights_.empty()) restore(*ctx.store);
  }

  std::int64_t stopped_epoch() const { return stopped_epoch_; }  // -1: ran to the end
  std::int64_t best_epoch() const { return best_epoch_; }        // -1: nothing monitored yet
  double best() const { return best_; }

 private:
  bool improves(double value, double reference) const {
    return sign_ > 0 ? value - std::fabs(options_.min_delta) > reference : value + std::fabs(options_.min_delta) < reference;
  }
  void snapshot(const variables& store) {
    best_weights_.resize(store.size());
    for (std::size_t i = 0; i < store.size(); ++i) {
      const variables::entry& e = store[i];
      const auto* p = reinterpret_cast<const unsigned char*>(e.data.data());
      best_weights_[i].assign(p, p + std::size_t(e.shape.elements()) * size_of(e.type));
    }
  }
  void restore(variables& store) const {
    // Variables bound after the snapshot (a later executor's) keep their values.
    for (std::size_t i = 0; i < best_weights_.size() && i < store.size(); ++i) {
      variables::entry* e = store.find(store[i].name);
      std::memcpy(e->data.data(), best_weights_[i].data(), best_weights_[i].size());
    }
  }

  early_stopping_options options_;
  double sign_ = -1;
  std::int64_t wait_ = 0, stopped_epoch_ = -1, best_epoch_ = -1;
  double best_ = std::numeric_limits<double>::infinity();
  std::vector<std::vector<unsigned char>> best_weights_;
};

}  // namespace callbacks
}  // namespace kiln
