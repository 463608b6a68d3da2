// fit() and its pieces: the Keras progress bar (exact strings, plain and terminal output with a
// scripted clock), fit on 2-class Gaussian blobs (loss falls, accuracy, validation against an
// f64 reference computed here from the final weights, per-epoch metric reset, TensorBoard events
// read back by an independent TFRecord/protobuf decoder, checkpoints kept), resuming from a
// checkpoint bitwise equal to an uninterrupted run, and early stopping on scripted metric
// sequences through a fake executor.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <unistd.h>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <tuple>
#include "mirrored_executor.hpp"
#include "test_util.hpp"
#include <train/fit.hpp>

using namespace kiln;
namespace fs = std::filesystem;

namespace {

fit_logs logs_of(std::initializer_list<std::pair<const char*, double>> values) {
  fit_logs l;
  for (const auto& [k, v] : values) l.set(k, v);
  return l;
}

// A clock that returns the scripted times in order, then keeps the last one.
struct scripted_clock {
  std::shared_ptr<std::vector<double>> times;
  std::shared_ptr<std::size_t> next = std::make_shared<std::size_t>(0);
  double operator()() const {
    const double t = (*times)[std::min(*next, times->size() - 1)];
    ++*next;
    return t;
  }
};

fs::path fresh_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("kiln_test_fit_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  return p;
}

}  // namespace

// ---- progress bar -----------------------------------------------------------------------------------

TEST_CASE("fit.progress.render") {
  const fit_logs l = logs_of({{"loss", 0.5403}, {"acc", 0.83742}});
  // The seed's line.
  CHECK(render_progress(354, 354, 12.3, l, true) == "354/354 [==============================] - 12s - loss: 0.5403 - acc: 0.8374");
  // In progress: int(30 * 100 / 354) = 8 cells, the last one '>'; ETA 4 / 100 * 254 = 10.16 s.
  CHECK(render_progress(100, 354, 4.0, l) == "100/354 [=======>......................] - ETA: 10s - loss: 0.5403 - acc: 0.8374");
  // The step count is right-aligned to the target's digits; ETA 1 / 5 * 349 = 69.8 s = 1:09.
  CHECK(render_progress(5, 354, 1.0, {}) == "  5/354 [..............................] - ETA: 1:09");
  // ETA 2 * 9999 = 19998 s = 5:33:18.
  CHECK(render_progress(1, 10000, 2.0, {}) == "    1/10000 [..............................] - ETA: 5:33:18");
  // Keras shows magnitudes up to 1e-3 in scientific notation.
  CHECK(render_progress(2, 2, 0.4, logs_of({{"loss", 0.0}, {"lr", 0.0005}, {"big", -123.45678}}), true) ==
        "2/2 [==============================] - 0s - loss: 0.0000e+00 - lr: 5.0000e-04 - big: -123.4568");
  CHECK(render_progress(12, 0, 3.0, logs_of({{"loss", 1}})) == "     12/Unknown - 3s - loss: 1.0000");
  CHECK(render_progress(3, 4, 1.0, {}, false, 10) == "3/4 [======>...] - ETA: 0s");
}

TEST_CASE("fit.progress.plain_lines") {
  std::string out;
  progress_bar bar({.mode = progress_mode::plain,
                    .write = [&](std::string_view s) { out += s; },
                    .clock = scripted_clock{std::make_shared<std::vector<double>>(std::vector<double>{100, 102.4, 200, 200.6})}});
  CHECK_FALSE(bar.is_bar());
  bar.begin_epoch(0, 2, 3);
  for (int s = 1; s <= 3; ++s) bar.update(s, logs_of({{"loss", 1.0 / s}}));
  CHECK(out.empty());  // nothing per step: a CI log gets one line per epoch
  bar.end_epoch(logs_of({{"loss", 0.5}, {"val_loss", 0.25}}));
  bar.begin_epoch(1, 2, 3);
  bar.update(1, logs_of({{"loss", 0.4}}));
  bar.end_epoch(logs_of({{"loss", 0.4}}));  // stopped after one step
  CHECK(out == "Epoch 1/2 - 3/3 - 2s - loss: 0.5000 - val_loss: 0.2500\n"
               "Epoch 2/2 - 1/3 - 1s - loss: 0.4000\n");
}

TEST_CASE("fit.progress.terminal_bar") {
  std::string out;
  // begin, update 1, update 2 (20 ms later: throttled), update 3, end; update 4 = target draws nothing.
  progress_bar bar({.mode = progress_mode::bar,
                    .width = 10,
                    .write = [&](std::string_view s) { out += s; },
                    .clock = scripted_clock{std::make_shared<std::vector<double>>(std::vector<double>{100, 100.5, 100.52, 100.6, 101.2})}});
  CHECK(bar.is_bar());
  bar.begin_epoch(2, 5, 4);
  bar.update(1, logs_of({{"loss", 10.5}}));
  bar.update(2, logs_of({{"loss", 7.25}}));
  bar.update(3, logs_of({{"loss", 0.5}}));
  bar.update(4, logs_of({{"loss", 0.25}}));
  bar.end_epoch(logs_of({{"loss", 0.25}, {"val_loss", 0.125}}));
  // ETA after 1 of 4 in 0.5 s: 1.5 s -> "1s"; after 3 in 0.6 s: 0.2 s -> "0s", one character
  // shorter than the line before, so one blank covers its tail.
  CHECK(out == "Epoch 3/5\n"
               "\r1/4 [=>........] - ETA: 1s - loss: 10.5000"
               "\r3/4 [======>...] - ETA: 0s - loss: 0.5000 "
               "\r4/4 [==========] - 1s - loss: 0.2500 - val_loss: 0.1250\n");
}

// ---- fit on Gaussian blobs ------------------------------------------------------------------------

namespace {

constexpr tensor blob_logits(graph& g) {
  tensor x = g.placeholder("x", f32, {batch, 2});
  tensor w = g.variable("w", f32, {2, 2}, init::glorot_uniform(3));
  tensor b = g.variable("b", f32, {2});
  return matmul(x, w) + b;
}

struct blob_train {
  constexpr graph operator()() const {
    graph g;
    tensor logits = blob_logits(g);
    tensor y = g.placeholder("y", i32, {batch});
    // The metric takes the per-sample losses, so the epoch's value is the mean over its samples
    // (Keras weights each batch's loss by its size); minimize takes their mean (shared by CSE).
    tensor losses = sparse_softmax_cross_entropy(y, logits, {.reduction = reduction::none});
    tensor loss = sparse_softmax_cross_entropy(y, logits);
    g.output("loss", metrics::mean(g, "loss", losses));
    g.output("acc", metrics::sparse_categorical_accuracy(g, "acc", y, logits));
    minimize(sgd{.learning_rate = 0.2, .momentum = 0.9}, loss);
    return g;
  }
};

struct blob_eval {
  constexpr graph operator()() const {
    graph g;
    tensor logits = blob_logits(g);
    tensor y = g.placeholder("y", i32, {batch});
    g.output("loss", metrics::mean(g, "val/loss", sparse_softmax_cross_entropy(y, logits, {.reduction = reduction::none})));
    g.output("acc", metrics::sparse_categorical_accuracy(g, "val/acc", y, logits));
    return g;
  }
};

// Class i % 2 around ±(1.5, 1.5) with stddev 0.7: the classes overlap by about 0.1%.
data::dataset blobs(std::int64_t n, std::uint64_t seed, std::int64_t nan_sample = -1) {
  kt::rng r(seed);
  std::vector<float> features(std::size_t(2 * n));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    labels[std::size_t(i)] = std::int32_t(i % 2);
    const double center = i % 2 ? 1.5 : -1.5;
    for (int d = 0; d < 2; ++d) {
      const double u1 = r.uniform(1e-12, 1), u2 = r.uniform(0, 1);
      features[std::size_t(2 * i + d)] = float(center + 0.7 * std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
  }
  if (nan_sample >= 0) features[std::size_t(2 * nan_sample)] = std::numeric_limits<float>::quiet_NaN();
  return data::dataset(std::move(features), {2}, std::move(labels));
}

// ---- an independent TFRecord + Event reader -----------------------------------------------------

std::uint32_t crc32c(const unsigned char* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}
std::uint32_t masked(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
std::uint64_t le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

struct proto_field {
  std::uint32_t number = 0, wire = 0;
  std::uint64_t integer = 0;      // varint, fixed32, fixed64
  std::string_view bytes;         // length-delimited
};
std::vector<proto_field> fields(std::string_view m) {
  std::vector<proto_field> out;
  std::size_t i = 0;
  auto varint = [&] {
    std::uint64_t v = 0;
    for (int shift = 0; i < m.size(); shift += 7) {
      const auto b = std::uint8_t(m[i++]);
      v |= std::uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  };
  while (i < m.size()) {
    proto_field f;
    const std::uint64_t key = varint();
    f.number = std::uint32_t(key >> 3);
    f.wire = std::uint32_t(key & 7);
    if (f.wire == 0) f.integer = varint();
    else if (f.wire == 1) { f.integer = le(reinterpret_cast<const unsigned char*>(m.data() + i), 8); i += 8; }
    else if (f.wire == 5) { f.integer = le(reinterpret_cast<const unsigned char*>(m.data() + i), 4); i += 4; }
    else if (f.wire == 2) { const auto n = std::size_t(varint()); f.bytes = m.substr(i, n); i += n; }
    else FAIL("unexpected wire type " << f.wire);
    out.push_back(f);
  }
  return out;
}

struct summary_entry {
  std::string tag;
  std::int64_t step = 0;
  double scalar = 0;
  double histogram_count = -1;  // HistogramProto.num, when the value is a histogram
};

// Every summary value of the only events file in `dir`; checks the framing CRCs on the way.
std::vector<summary_entry> read_events(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find("tfevents") != std::string::npos) files.push_back(e.path());
  REQUIRE(files.size() == 1);
  std::ifstream in(files[0], std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::vector<summary_entry> out;
  std::size_t pos = 0;
  int records = 0;
  while (pos < bytes.size()) {
    REQUIRE(pos + 12 <= bytes.size());
    const auto length = std::size_t(le(p + pos, 8));
    CHECK(le(p + pos + 8, 4) == masked(crc32c(p + pos, 8)));
    REQUIRE(pos + 12 + length + 4 <= bytes.size());
    const std::string_view event(bytes.data() + pos + 12, length);
    CHECK(le(p + pos + 12 + length, 4) == masked(crc32c(p + pos + 12, length)));
    pos += 12 + length + 4;
    std::int64_t step = 0;
    for (const auto& f : fields(event)) {
      if (f.number == 3 && records == 0) CHECK(f.bytes == "brain.Event:2");
      if (f.number == 2) step = std::int64_t(f.integer);
    }
    for (const auto& f : fields(event)) {
      if (f.number != 5) continue;  // Event.summary
      for (const auto& v : fields(f.bytes)) {
        if (v.number != 1) continue;  // Summary.value
        summary_entry s;
        s.step = step;
        for (const auto& vf : fields(v.bytes)) {
          if (vf.number == 1) s.tag = std::string(vf.bytes);
          if (vf.number == 2) s.scalar = double(std::bit_cast<float>(std::uint32_t(vf.integer)));
          if (vf.number == 5)
            for (const auto& hf : fields(vf.bytes))
              if (hf.number == 3) s.histogram_count = std::bit_cast<double>(hf.integer);
        }
        out.push_back(s);
      }
    }
    ++records;
  }
  return out;
}

std::vector<summary_entry> tagged(const std::vector<summary_entry>& all, std::string_view tag) {
  std::vector<summary_entry> r;
  for (const auto& s : all)
    if (s.tag == tag) r.push_back(s);
  return r;
}

std::string keras_value(double v) {
  char b[64];
  std::snprintf(b, sizeof b, std::fabs(v) > 1e-3 ? "%.4f" : "%.4e", v);
  return b;
}

}  // namespace

TEST_CASE("fit.blobs.train_validate_log_checkpoint") {
  const data::dataset train_set = blobs(400, 1), val_set = blobs(200, 2);
  data::pipeline train_pipe(train_set, {.batch_size = 32, .seed = 5});
  data::pipeline val_pipe(val_set, {.batch_size = 64, .shuffle = false});
  auto train = compile<cpu>(blob_train{});
  auto eval = compile<cpu>(blob_eval{}, &train.vars());
  const fs::path logdir = fresh_dir("logs"), ckdir = fresh_dir("ckpt");
  callbacks::tensorboard tb(logdir, {.update_freq = 5, .histograms = {"w"}});
  callbacks::checkpoint ckpt(ckdir, /*keep_last*/ 2);
  std::string printed;
  const history h = fit(train, train_pipe,
                        {.epochs = 5,
                         .metrics = {"loss", "acc"},
                         .validation = {eval, val_pipe},
                         .callbacks = {&tb, &ckpt},
                         .verbose = 1,
                         .progress = {.mode = progress_mode::plain, .write = [&](std::string_view s) { printed += s; }, .clock = [] { return 0.0; }}});

  REQUIRE(h.size() == 5);
  CHECK(h.epochs == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(h.keys() == std::vector<std::string>{"loss", "acc", "val_loss", "val_acc"});
  for (std::size_t e = 1; e < 5; ++e) CHECK(h["loss"][e] < h["loss"][e - 1]);
  CHECK(h["loss"][0] < 0.5);  // from about log(2) at the start
  CHECK(h["acc"].back() > 0.95);
  CHECK(h["val_acc"].back() > 0.95);

  // The epoch's train metrics cover exactly its 400 samples (reset per epoch), the validation's
  // its 200; the logged values are the metric results after the last step.
  CHECK(train.variable<double>("loss/count").item() == 400);
  CHECK(train.variable<double>("val/loss/count").item() == 200);
  CHECK(metrics::result(train.vars(), "acc") == h["acc"].back());

  // Validation against the final weights, in f64 here.
  {
    const auto w = train.variable<float>("w"), b = train.variable<float>("b");
    double loss = 0, correct = 0;
    for (std::int64_t i = 0; i < val_set.size(); ++i) {
      const auto x = val_set.features(i);
      double z[2];
      for (int c = 0; c < 2; ++c) z[c] = double(x[0]) * w.at({0, c}) + double(x[1]) * w.at({1, c}) + b.at({c});
      const double m = std::max(z[0], z[1]);
      const double lse = m + std::log(std::exp(z[0] - m) + std::exp(z[1] - m));
      loss += lse - z[val_set.label(i)];
      correct += (z[1] > z[0] ? 1 : 0) == val_set.label(i) ? 1 : 0;
    }
    CHECK(kt::close(h["val_loss"].back(), loss / 200, 1e-5, 1e-6));
    CHECK(h["val_acc"].back() == correct / 200);
  }

  // One plain line per epoch.
  std::string expected;
  for (int e = 0; e < 5; ++e)
    expected += "Epoch " + std::to_string(e + 1) + "/5 - 13/13 - 0s - loss: " + keras_value(h["loss"][std::size_t(e)]) +
                " - acc: " + keras_value(h["acc"][std::size_t(e)]) + " - val_loss: " + keras_value(h["val_loss"][std::size_t(e)]) +
                " - val_acc: " + keras_value(h["val_acc"][std::size_t(e)]) + "\n";
  CHECK(printed == expected);

  // TensorBoard: epoch scalars per run directory, batch scalars every 5 steps, histograms of w.
  const auto train_events = read_events(logdir / "train");
  const auto val_events = read_events(logdir / "validation");
  for (const auto& [tag, key, events] : {std::tuple{"epoch_loss", "loss", &train_events}, std::tuple{"epoch_acc", "acc", &train_events},
                                         std::tuple{"epoch_loss", "val_loss", &val_events}, std::tuple{"epoch_acc", "val_acc", &val_events}}) {
    const auto got = tagged(*events, tag);
    INFO(tag << " / " << key);
    REQUIRE(got.size() == 5);
    for (std::size_t e = 0; e < 5; ++e) {
      CHECK(got[e].step == std::int64_t(e));
      CHECK(got[e].scalar == double(float(h[key][e])));
    }
  }
  const auto batch_loss = tagged(train_events, "batch_loss");
  REQUIRE(batch_loss.size() == 13);  // 65 steps
  for (std::size_t i = 0; i < batch_loss.size(); ++i) CHECK(batch_loss[i].step == std::int64_t(5 * (i + 1)));
  CHECK(tagged(val_events, "batch_loss").empty());
  const auto histograms = tagged(train_events, "w");
  REQUIRE(histograms.size() == 5);
  for (const auto& s : histograms) CHECK(s.histogram_count == 4);

  // Checkpoints after every epoch, the newest two kept.
  std::vector<std::string> kept;
  for (const auto& e : fs::directory_iterator(ckdir)) kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  CHECK(kept == std::vector<std::string>{"ckpt-4.kiln", "ckpt-5.kiln"});
  fs::remove_all(logdir.parent_path());
}

TEST_CASE("fit.blobs.resume_from_checkpoint_is_bitwise_identical") {
  const data::dataset train_set = blobs(300, 3), val_set = blobs(100, 4);
  auto run = [&](std::int64_t from, std::int64_t to, const fs::path* restore_from, callback* ckpt, history& h) {
    data::pipeline train_pipe(train_set, {.batch_size = 20, .seed = 9, .workers = 2});
    data::pipeline val_pipe(val_set, {.batch_size = 50, .shuffle = false});
    auto train = std::make_unique<decltype(compile<cpu>(blob_train{}))>(nullptr);
    auto eval = compile<cpu>(blob_eval{}, &train->vars());
    std::int64_t initial = from;
    if (restore_from) initial = callbacks::checkpoint(*restore_from).restore(train->vars());
    CHECK(initial == from);
    std::vector<callback*> cbs;
    if (ckpt) cbs.push_back(ckpt);
    h = fit(*train, train_pipe,
            {.epochs = to, .initial_epoch = initial, .metrics = {"loss", "acc"}, .validation = {eval, val_pipe}, .callbacks = cbs, .verbose = 0});
    return train;
  };
  history whole, first, second;
  const auto uninterrupted = run(0, 4, nullptr, nullptr, whole);
  const fs::path dir = fresh_dir("resume");
  callbacks::checkpoint ckpt(dir, 5);
  run(0, 2, nullptr, &ckpt, first);
  CHECK(fs::exists(dir / "ckpt-2.kiln"));
  const auto resumed = run(2, 4, &dir, nullptr, second);

  CHECK(second.epochs == std::vector<std::int64_t>{2, 3});
  for (const char* key : {"loss", "acc", "val_loss", "val_acc"}) {
    INFO(key);
    CHECK(first[key][0] == whole[key][0]);
    CHECK(first[key][1] == whole[key][1]);
    CHECK(second[key][0] == whole[key][2]);
    CHECK(second[key][1] == whole[key][3]);
  }
  // Weights, momentum slots and the iteration counter, bit for bit.
  for (const char* name : {"w", "b", "w/momentum", "b/momentum"}) {
    INFO(name);
    const auto a = uninterrupted->variable<float>(name), b = resumed->variable<float>(name);
    CHECK(std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(float)) == 0);
  }
  CHECK(resumed->variable<std::int64_t>("optimizer/iterations").item() == 4 * 15);
  CHECK(uninterrupted->variable<std::int64_t>("optimizer/iterations").item() == 4 * 15);
  fs::remove_all(dir.parent_path());
}

// ---- learning-rate scheduler ----------------------------------------------------------------------

namespace {

// loss = w (+ 0 x the batch): d loss / d w = 1, so plain SGD subtracts exactly the step's rate and
// w ends at minus the sum of the rates the train steps used.
struct rate_probe {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 2});
    tensor y = g.placeholder("y", i32, {batch});
    tensor w = g.variable("w", f64, {});
    tensor batch_term = cast(reduce_mean(x) + reduce_mean(cast(y, f32)), f64) * 0.0;
    tensor loss = w + batch_term;
    g.output("loss", loss);
    minimize(sgd{.learning_rate = schedules::variable(0.5, "lr")}, loss);
    return g;
  }
};

}  // namespace

TEST_CASE("fit.learning_rate_scheduler.cosine_over_the_run") {
  const data::dataset set = blobs(40, 5);  // 4 batches of 10 per epoch
  const double peak = 0.3;
  const std::int64_t epochs = 3, steps = 4, total = epochs * steps;
  double used = 0;  // independent reference: Keras' CosineDecay(peak, total) at steps 0 .. total - 1
  for (std::int64_t s = 0; s < total; ++s) used += peak * 0.5 * (1 + std::cos(3.141592653589793 * double(s) / double(total)));

  SUBCASE("the variable starts at the schedule's initial value") {
    auto train = compile<cpu>(rate_probe{});
    CHECK(train.variable<double>("lr").item() == 0.5);
  }
  SUBCASE("one fit") {
    auto train = compile<cpu>(rate_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler lr(callbacks::learning_rate_scheduler::cosine(peak), "lr");
    fit(train, pipe, {.epochs = epochs, .callbacks = {&lr}, .verbose = 0});
    CHECK(train.variable<double>("w").item() == doctest::Approx(-used).epsilon(1e-14));
    CHECK(lr.current() == doctest::Approx(0).scale(1));          // the cosine ends at 0 ...
    CHECK(train.variable<double>("lr").item() == lr.current());  // ... and the variable holds it
  }
  SUBCASE("interrupted after epoch 1 and resumed: the curve continues, not restarts") {
    auto train = compile<cpu>(rate_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler lr(callbacks::learning_rate_scheduler::cosine(peak), "lr");
    struct interrupt : callback {
      void on_epoch_end(fit_context& ctx, std::int64_t, const fit_logs&) override { ctx.stop_training = true; }
    } stop;
    fit(train, pipe, {.epochs = epochs, .callbacks = {&lr, &stop}, .verbose = 0});
    CHECK(train.variable<double>("w").item() > -used * 0.6);  // stopped early: 4 of the 12 steps
    fit(train, pipe, {.epochs = epochs, .initial_epoch = 1, .callbacks = {&lr}, .verbose = 0});
    CHECK(train.variable<double>("w").item() == doctest::Approx(-used).epsilon(1e-14));
  }
  SUBCASE("a constant function: every step subtracts it") {
    auto train = compile<cpu>(rate_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler lr([](std::int64_t, std::int64_t) { return 0.125; }, "lr");
    fit(train, pipe, {.epochs = 2, .callbacks = {&lr}, .verbose = 0});
    CHECK(train.variable<double>("w").item() == -0.125 * 8);
  }
  SUBCASE("errors name the variable or the step") {
    auto train = compile<cpu>(rate_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler missing(callbacks::learning_rate_scheduler::cosine(peak));  // "learning_rate"
    CHECK_THROWS_WITH_AS(fit(train, pipe, {.callbacks = {&missing}, .verbose = 0}),
                         doctest::Contains("unknown variable 'learning_rate'"), error);
    callbacks::learning_rate_scheduler negative([](std::int64_t s, std::int64_t) { return s < 2 ? 0.1 : -0.1; }, "lr");
    CHECK_THROWS_WITH_AS(fit(train, pipe, {.callbacks = {&negative}, .verbose = 0}),
                         "kiln: learning_rate_scheduler: the rate at step 2 is -0.100000; it must be finite and >= 0", error);
    CHECK(train.variable<double>("w").item() == doctest::Approx(-0.2));  // the two good steps ran, nothing after
    CHECK_THROWS_AS(callbacks::learning_rate_scheduler(nullptr), error);
  }
}

// ---- fit with an executor that keeps a device copy of the variables ---------------------------------

namespace {

// blob_train with a learning rate the scheduler sets per step.
struct blob_train_scheduled {
  constexpr graph operator()() const {
    graph g;
    tensor logits = blob_logits(g);
    tensor y = g.placeholder("y", i32, {batch});
    tensor losses = sparse_softmax_cross_entropy(y, logits, {.reduction = reduction::none});
    g.output("loss", metrics::mean(g, "loss", losses));
    g.output("acc", metrics::sparse_categorical_accuracy(g, "acc", y, logits));
    minimize(sgd{.learning_rate = schedules::variable(0.2, "lr"), .momentum = 0.9}, sparse_softmax_cross_entropy(y, logits));
    return g;
  }
};

}  // namespace

// fit and every callback through the CUDA executor's variable contract, on a CPU "device"
// (tests/mirrored_executor.hpp: the same mirrored_variables bookkeeping the CUDA executor uses):
// the learning rate the scheduler writes each step, the metric resets, the checkpoints, early
// stopping's snapshot and restore must all reach (or read) the copy the steps run on, so the
// run is bit for bit the one of plain CPU executors on a single store.
TEST_CASE("fit.device_copy_of_the_variables") {
  const data::dataset train_set = blobs(200, 7), val_set = blobs(100, 8);
  const std::vector<float> probe_x{0.5f, -1, 2, 0.25f};
  const std::vector<std::int32_t> probe_y{0, 1};
  struct result {
    history h;
    std::int64_t best_epoch = -1, stopped_epoch = -1;
    double last_rate = 0;
    std::vector<std::pair<std::string, std::vector<unsigned char>>> store;
    std::vector<unsigned char> checkpoint;
    double probe_loss = 0;
  };
  auto fit_with = [&](auto& train, auto& eval, const char* dir_name) {
    result r;
    data::pipeline train_pipe(train_set, {.batch_size = 16, .seed = 3});
    data::pipeline val_pipe(val_set, {.batch_size = 50, .shuffle = false});
    const fs::path dir = fresh_dir(dir_name);
    callbacks::learning_rate_scheduler lr(callbacks::learning_rate_scheduler::cosine(0.3, 0.1), "lr");
    callbacks::checkpoint ckpt(dir, 1);
    // val_loss falls every epoch, so "max" keeps epoch 0 as the best: the run stops after epoch 2
    // and the restore puts epoch 0's state back (on the device too, or the probe step shows it).
    callbacks::early_stopping stop({.monitor = "val_loss", .patience = 2, .mode = callbacks::monitor_mode::max, .restore_best_weights = true});
    r.h = fit(train, train_pipe, {.epochs = 6, .metrics = {"loss", "acc"}, .validation = {eval, val_pipe}, .callbacks = {&lr, &ckpt, &stop}, .verbose = 0});
    r.best_epoch = stop.best_epoch();
    r.stopped_epoch = stop.stopped_epoch();
    r.last_rate = lr.current();
    variables& store = train.vars();
    for (std::size_t i = 0; i < store.size(); ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(store[i].data.data());
      r.store.emplace_back(store[i].name, std::vector<unsigned char>(p, p + std::size_t(store[i].shape.elements()) * size_of(store[i].type)));
    }
    std::sort(r.store.begin(), r.store.end());
    for (const auto& e : fs::directory_iterator(dir)) {
      std::ifstream in(e.path(), std::ios::binary);
      r.checkpoint.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // One more evaluation step: it runs on the restored best weights only if they reached the copy
    // the steps run on.
    r.probe_loss = eval.run({{"x", view(probe_x, {2, 2})}, {"y", view(probe_y, {2})}}).template get<double>("loss").item();
    fs::remove_all(dir);
    return r;
  };

  auto train_cpu = compile<cpu>(blob_train_scheduled{});
  auto eval_cpu = compile<cpu>(blob_eval{}, &train_cpu.vars());
  const result want = fit_with(train_cpu, eval_cpu, "plain");

  kt::mirrored_store s;
  kt::mirrored_executor<blob_train_scheduled> train_mirrored(s);
  kt::mirrored_executor<blob_eval> eval_mirrored(s);
  const result got = fit_with(train_mirrored, eval_mirrored, "mirrored");

  REQUIRE(want.h.size() == 3);
  CHECK(want.best_epoch == 0);
  CHECK(want.stopped_epoch == 2);
  CHECK(want.h["loss"].back() < want.h["loss"].front());
  CHECK(got.h.epochs == want.h.epochs);
  for (const std::string& key : want.h.keys()) {
    INFO(key);
    CHECK(got.h[key] == want.h[key]);
  }
  CHECK(got.best_epoch == want.best_epoch);
  CHECK(got.stopped_epoch == want.stopped_epoch);
  CHECK(got.last_rate == want.last_rate);
  REQUIRE(got.store.size() == want.store.size());
  for (std::size_t i = 0; i < want.store.size(); ++i) {
    INFO(want.store[i].first);
    CHECK(got.store[i] == want.store[i]);
  }
  CHECK(!want.checkpoint.empty());
  CHECK(got.checkpoint == want.checkpoint);
  CHECK(got.probe_loss == want.probe_loss);
  // The device copy holds the restored state (early stopping restores the rate variable too).
  CHECK(s.device.get<double>("lr").item() == train_cpu.variable<double>("lr").item());
  CHECK(s.device.get<double>("lr").item() != want.last_rate);
  const auto w = s.device.get<float>("w");
  CHECK(std::memcmp(w.data(), train_cpu.variable<float>("w").data(), 4 * sizeof(float)) == 0);
}

TEST_CASE("fit.errors") {
  data::pipeline pipe(blobs(10, 1), {.batch_size = 4});
  auto train = compile<cpu>(blob_train{});
  CHECK_THROWS_WITH_AS(fit(train, pipe, {.steps_per_epoch = 4, .verbose = 0}),
                       "kiln: fit: train steps 4 is not in [0, 3], the batches of one pipeline epoch (0: all of them)", error);
  CHECK_THROWS_WITH_AS(fit(train, pipe, {.metrics = {"loss", "accuracy"}, .verbose = 0}),
                       "kiln: unknown output 'accuracy'; outputs are: loss, acc", error);
  CHECK_THROWS_WITH_AS(fit(train, pipe, {.epochs = 1, .initial_epoch = 2, .verbose = 0}),
                       "kiln: fit: needs 0 <= initial_epoch <= epochs, got initial_epoch 2, epochs 1", error);
}

// ---- early stopping with a scripted executor ---------------------------------------------------------

namespace {

// Returns script[epoch of this run] as "loss" and "acc", and writes that epoch into variable "w".
class scripted_executor {
 public:
  struct outputs {
    const scripted_executor* owner;
    const value_ref& operator[](std::string_view name) const {
      if (name == "loss" || name == "acc") return owner->value_;
      throw error("kiln: unknown output '" + std::string(name) + "'");
    }
  };

  scripted_executor(std::vector<double> script, std::int64_t steps_per_epoch) : script_(std::move(script)), steps_(steps_per_epoch) {
    node n;
    n.kind = op::variable;
    n.type = dtype::f32;
    n.name = name_text("w");
    variable_attrs{.init = init_kind::zeros}.store(n);
    store_.bind(n, {}, 0);
  }

  outputs run(std::span<const feed>) {
    const std::int64_t epoch = runs_++ / steps_;
    current_ = script_.at(std::size_t(epoch));
    value_ = view(&current_, dims{});
    store_.get<float>("w").item() = float(epoch);
    return {this};
  }
  variables& vars() { return store_; }
  std::int64_t runs() const { return runs_; }

 private:
  std::vector<double> script_;
  std::int64_t steps_, runs_ = 0;
  double current_ = 0;
  value_ref value_{};
  variables store_;
};
static_assert(fit_executor<scripted_executor>);

struct stopper : callback {
  std::int64_t at_epoch = 0, at_batch = 0;
  void on_batch_end(fit_context& ctx, std::int64_t batch, const fit_logs&) override {
    if (ctx.epoch == at_epoch && batch == at_batch) ctx.stop_training = true;
  }
};

}  // namespace

TEST_CASE("fit.early_stopping.min_mode") {
  data::pipeline pipe(blobs(4, 1), {.batch_size = 2});  // 2 steps per epoch
  const std::vector<double> losses{1.0, 0.8, 0.85, 0.79, 0.9, 0.95, 0.7, 0.6};
  SUBCASE("min_delta keeps 0.79 from counting as better than 0.8") {
    // wait: e0 best 1.0 (0), e1 best 0.8 (0), e2 1, e3 2 >= patience: stop after epoch 3.
    scripted_executor exe(losses, 2);
    callbacks::early_stopping stop({.monitor = "loss", .min_delta = 0.02, .patience = 2});
    const history h = fit(exe, pipe, {.epochs = 8, .callbacks = {&stop}, .verbose = 0});
    CHECK(h.epochs == std::vector<std::int64_t>{0, 1, 2, 3});
    CHECK(stop.stopped_epoch() == 3);
    CHECK(stop.best_epoch() == 1);
    CHECK(stop.best() == 0.8);
    CHECK(exe.vars().get<float>("w").item() == 3.0f);  // not restored
  }
  SUBCASE("without min_delta 0.79 improves; restore_best_weights puts epoch 3's state back") {
    // e3 best 0.79 (0), e4 1, e5 2: stop after epoch 5.
    scripted_executor exe(losses, 2);
    callbacks::early_stopping stop({.monitor = "loss", .patience = 2, .restore_best_weights = true});
    const history h = fit(exe, pipe, {.epochs = 8, .callbacks = {&stop}, .verbose = 0});
    CHECK(h.size() == 6);
    CHECK(stop.stopped_epoch() == 5);
    CHECK(stop.best_epoch() == 3);
    CHECK(h["loss"] == std::vector<double>{1.0, 0.8, 0.85, 0.79, 0.9, 0.95});
    CHECK(exe.vars().get<float>("w").item() == 3.0f);
  }
  SUBCASE("patience 0 stops at the first epoch without improvement, never at epoch 0") {
    scripted_executor exe(losses, 2);
    callbacks::early_stopping stop({.monitor = "loss"});
    fit(exe, pipe, {.epochs = 8, .callbacks = {&stop}, .verbose = 0});
    CHECK(stop.stopped_epoch() == 2);
  }
  SUBCASE("a baseline not beaten lets patience run out from the start") {
    // No epoch beats 0.75, so wait is never reset: e0 1 (best 1.0), e1 2 (best 0.8; an improving
    // epoch never stops), e2 3 >= 2: stop after epoch 2.
    scripted_executor exe(losses, 2);
    callbacks::early_stopping stop({.monitor = "loss", .patience = 2, .baseline = 0.75});
    fit(exe, pipe, {.epochs = 8, .callbacks = {&stop}, .verbose = 0});
    CHECK(stop.stopped_epoch() == 2);
    CHECK(stop.best_epoch() == 1);
  }
  SUBCASE("a missing monitor is an error naming what the logs hold") {
    scripted_executor exe(losses, 2);
    callbacks::early_stopping stop;  // val_loss, but there is no validation
    CHECK_THROWS_WITH_AS(fit(exe, pipe, {.epochs = 3, .callbacks = {&stop}, .verbose = 0}),
                         "kiln: early_stopping monitors 'val_loss', which the logs do not have; they have: loss", error);
  }
}

TEST_CASE("fit.early_stopping.max_mode_for_accuracy") {
  data::pipeline pipe(blobs(6, 1), {.batch_size = 2});  // 3 steps per epoch
  // "acc" is maximized: e0 0.5, e1 0.7, e2 0.69 (1), e3 0.71 (0), e4 0.7 (1), e5 0.6 (2): stop after 5.
  scripted_executor exe({0.5, 0.7, 0.69, 0.71, 0.7, 0.6, 0.9, 0.9}, 3);
  callbacks::early_stopping stop({.monitor = "acc", .patience = 2, .restore_best_weights = true});
  const history h = fit(exe, pipe, {.epochs = 8, .metrics = {"acc"}, .callbacks = {&stop}, .verbose = 0});
  CHECK(h.size() == 6);
  CHECK(stop.stopped_epoch() == 5);
  CHECK(stop.best_epoch() == 3);
  CHECK(exe.vars().get<float>("w").item() == 3.0f);
  CHECK(exe.runs() == 18);
}

TEST_CASE("fit.stop_training_mid_epoch_and_terminal_output") {
  data::pipeline pipe(blobs(8, 1), {.batch_size = 2});  // 4 steps per epoch
  scripted_executor exe({1.0, 0.5, 0.25}, 4);
  stopper stop;
  stop.at_epoch = 1;
  stop.at_batch = 1;
  std::string out;
  const history h = fit(exe, pipe,
                        {.epochs = 3,
                         .callbacks = {&stop},
                         .progress = {.mode = progress_mode::bar, .interval = std::chrono::milliseconds(0),
                                      .write = [&](std::string_view s) { out += s; }, .clock = [] { return 7.0; }}});
  CHECK(h.size() == 2);
  CHECK(exe.runs() == 6);  // 4 + 2
  CHECK(out == "Epoch 1/3\n"
               "\r1/4 [======>.......................] - ETA: 0s - loss: 1.0000"
               "\r2/4 [==============>...............] - ETA: 0s - loss: 1.0000"
               "\r3/4 [=====================>........] - ETA: 0s - loss: 1.0000"
               "\r4/4 [==============================] - 0s - loss: 1.0000     \n"
               "Epoch 2/3\n"
               "\r1/4 [======>.......................] - ETA: 0s - loss: 0.5000"
               "\r2/4 [==============>...............] - ETA: 0s - loss: 0.5000"
               "\r2/4 [==============>...............] - 0s - loss: 0.5000     \n");  // blanks over "ETA: "
}

// ---- reliability: checkpoints first, directory checks up front, NaN stops training ---------------

namespace {

using kt::contains;
using kt::message_of;

// Counts the train steps fit ran, to prove a check came before the first one.
struct step_counter : callback {
  std::int64_t steps = 0;
  void on_batch_end(fit_context&, std::int64_t, const fit_logs&) override { ++steps; }
};

// Runs f with stderr redirected to a file; returns what was printed there.
template <class F>
std::string stderr_of(F&& f) {
  const fs::path file = fresh_dir("stderr.txt");
  fs::create_directories(file.parent_path());
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* out = std::fopen(file.c_str(), "w");
  REQUIRE(out);
  ::dup2(::fileno(out), 2);
  try {
    f();
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::fclose(out);
    throw;
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(out);
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Removes the log directory at the end of `epoch`, so the TensorBoard callback's next flush fails
// ("deleted while open"), as a full disk or a removed mount would make it fail.
struct remove_logdir_at : callback {
  fs::path logdir;
  std::int64_t epoch;
  remove_logdir_at(fs::path d, std::int64_t e) : logdir(std::move(d)), epoch(e) {}
  void on_epoch_end(fit_context&, std::int64_t e, const fit_logs&) override {
    if (e == epoch) fs::remove_all(logdir);
  }
};

}  // namespace

TEST_CASE("fit.reliability.failing_tensorboard_costs_no_checkpoint_and_reports_once") {
  data::pipeline pipe(blobs(40, 1), {.batch_size = 10, .seed = 1});
  auto train = compile<cpu>(blob_train{});
  const fs::path logdir = fresh_dir("tb_fail_logs"), ckdir = fresh_dir("tb_fail_ckpt");
  remove_logdir_at breaker(logdir, 1);
  callbacks::tensorboard tb(logdir);
  callbacks::checkpoint ckpt(ckdir, 0);
  // The logger comes first in the list, the checkpoint last: fit still saves before logging.
  history h;
  const std::string printed = stderr_of([&] {
    h = fit(train, pipe, {.epochs = 4, .metrics = {"loss"}, .callbacks = {&breaker, &tb, &ckpt}, .verbose = 0});
  });
  CHECK(h.size() == 4);
  CHECK(names_in(ckdir) == std::vector<std::string>{"ckpt-1.kiln", "ckpt-2.kiln", "ckpt-3.kiln", "ckpt-4.kiln"});
  CHECK(contains(tb.failure(), "deleted while open"));
  CHECK(count_of(printed, "deleted while open") == 1);
  CHECK(contains(printed, "TensorBoard logging is off for the rest of this run"));
  fs::remove_all(ckdir.parent_path());
}

TEST_CASE("fit.reliability.checkpoint_saved_before_a_failing_callback") {
  // Any callback that throws at the epoch's end (a logger on a full disk) comes after the save.
  struct failing_logger : callback {
    void on_epoch_end(fit_context&, std::int64_t, const fit_logs&) override { throw error("logger: No space left on device"); }
  } logger;
  data::pipeline pipe(blobs(40, 1), {.batch_size = 10, .seed = 1});
  auto train = compile<cpu>(blob_train{});
  const fs::path ckdir = fresh_dir("saved_first");
  callbacks::checkpoint ckpt(ckdir, 3);
  CHECK_THROWS_WITH_AS(fit(train, pipe, {.epochs = 3, .metrics = {"loss"}, .callbacks = {&logger, &ckpt}, .verbose = 0}),
                       "logger: No space left on device", error);
  CHECK(names_in(ckdir) == std::vector<std::string>{"ckpt-1.kiln"});
  fs::remove_all(ckdir.parent_path());
}

TEST_CASE("fit.reliability.checkpoint_directory_errors_before_the_first_epoch") {
  data::pipeline pipe(blobs(40, 1), {.batch_size = 10, .seed = 1});
  auto train = compile<cpu>(blob_train{});
  const fs::path root = fresh_dir("unwritable");
  fs::create_directories(root);
  std::ofstream(root / "plain_file") << "x";
  callbacks::checkpoint ckpt(root / "plain_file" / "ckpt", 3);
  step_counter counter;
  const std::string msg = message_of([&] { fit(train, pipe, {.epochs = 2, .metrics = {"loss"}, .callbacks = {&counter, &ckpt}, .verbose = 0}); });
  CHECK(contains(msg, "cannot create checkpoint directory"));
  CHECK(contains(msg, "plain_file"));
  CHECK(counter.steps == 0);
  fs::remove_all(root.parent_path());
}

TEST_CASE("fit.reliability.new_run_refuses_a_directory_of_another_run") {
  const data::dataset set = blobs(40, 1);
  const fs::path dir = fresh_dir("other_run");
  {  // run A: 3 epochs, ckpt-1 .. ckpt-3
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    auto a = compile<cpu>(blob_train{});
    callbacks::checkpoint ckpt(dir, 5);
    fit(a, pipe, {.epochs = 3, .metrics = {"loss"}, .callbacks = {&ckpt}, .verbose = 0});
  }
  const auto run_a_files = names_in(dir);
  REQUIRE(run_a_files == std::vector<std::string>{"ckpt-1.kiln", "ckpt-2.kiln", "ckpt-3.kiln"});
  const auto run_a_newest = io::read_checkpoint_contents(dir / "ckpt-3.kiln");

  // Run B starts over in the same directory without resuming: refused before any step, A's files kept.
  data::pipeline pipe(set, {.batch_size = 10, .seed = 2});
  auto b = compile<cpu>(blob_train{});
  step_counter counter;
  callbacks::checkpoint refusing(dir, 2);
  const std::string msg = message_of([&] { fit(b, pipe, {.epochs = 2, .metrics = {"loss"}, .callbacks = {&counter, &refusing}, .verbose = 0}); });
  CHECK(contains(msg, "already holds 3 checkpoints newer than step 0"));
  CHECK(contains(msg, "ckpt-3.kiln"));
  CHECK(contains(msg, "Resume it"));
  CHECK(counter.steps == 0);
  CHECK(names_in(dir) == run_a_files);

  // A resume of A (initial_epoch 3 from its checkpoint) is accepted and continues A.
  {
    data::pipeline pipe_a(set, {.batch_size = 10, .seed = 1});
    auto a2 = compile<cpu>(blob_train{});
    callbacks::checkpoint resuming(dir, 5);
    const std::int64_t initial = resuming.restore(a2.vars());
    CHECK(initial == 3);
    REQUIRE(resuming.restored());
    CHECK(resuming.restored()->file == dir / "ckpt-3.kiln");
    fit(a2, pipe_a, {.epochs = 4, .initial_epoch = initial, .metrics = {"loss"}, .callbacks = {&resuming}, .verbose = 0});
    CHECK(names_in(dir) == std::vector<std::string>{"ckpt-1.kiln", "ckpt-2.kiln", "ckpt-3.kiln", "ckpt-4.kiln"});
  }

  // With overwrite, B deletes them first; its own checkpoints are all kept (keep_last 2).
  callbacks::checkpoint overwriting(dir, 2, 1, io::existing_checkpoints::overwrite);
  fit(b, pipe, {.epochs = 3, .metrics = {"loss"}, .callbacks = {&overwriting}, .verbose = 0});
  CHECK(names_in(dir) == std::vector<std::string>{"ckpt-2.kiln", "ckpt-3.kiln"});
  CHECK(io::read_checkpoint_contents(dir / "ckpt-3.kiln").step == 3);
  (void)run_a_newest;
  fs::remove_all(dir.parent_path());
}

TEST_CASE("fit.reliability.terminate_on_nan_names_epoch_batch_step_and_output") {
  // Sample 25 holds a NaN pixel; unshuffled batches of 10 put it in batch 2 of each epoch.
  data::pipeline pipe(blobs(40, 1, /*nan_sample*/ 25), {.batch_size = 10, .shuffle = false});
  auto train = compile<cpu>(blob_train{});
  const fs::path ckdir = fresh_dir("nan_ckpt");
  callbacks::terminate_on_nan stop_on_nan;
  callbacks::checkpoint ckpt(ckdir, 3);
  step_counter counter;
  try {
    fit(train, pipe, {.epochs = 3, .metrics = {"loss", "acc"}, .callbacks = {&ckpt, &stop_on_nan, &counter}, .verbose = 0});
    FAIL("fit returned normally after a NaN loss");
  } catch (const callbacks::non_finite_error& e) {
    CHECK(e.output == "loss");
    CHECK(std::isnan(e.value));
    CHECK(e.epoch == 0);
    CHECK(e.batch == 2);
    CHECK(e.global_step == 3);
    CHECK(contains(e.what(), "output 'loss' is NaN at epoch 0, batch 2 (global step 3)"));
  }
  CHECK(counter.steps == 2);  // the callbacks after it did not see the NaN step
  CHECK((!fs::exists(ckdir) || names_in(ckdir).empty()));  // no checkpoint of NaN weights
  fs::remove_all(ckdir.parent_path());
}
