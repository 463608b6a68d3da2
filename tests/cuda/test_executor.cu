// The CUDA executor's side of the executor contract (runtime/binding.hpp, runtime/mirror.hpp):
// per-variable coherence between the host store and the device copy, one device copy per store
// shared by executors, a bad gather index stopping the assigns after it, the arena surviving an
// out-of-memory growth, run_device ordering and feeding back its own outputs, and fit() with its
// callbacks. Expected values are computed here by hand; the same bookkeeping runs without a GPU
// in tests/test_runtime.cpp and tests/test_fit.cpp (mirrored CPU executor).
#include <cuda_runtime.h>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>
#include "../executor_contract_models.hpp"
#include "harness.cuh"
#include "train/fit.hpp"
#include "train/minimize.hpp"
#include "train/schedules.hpp"

using namespace kiln;

namespace {

using contract_models::mirror_infer;  // tests/executor_contract_models.hpp
using contract_models::mirror_train;

using contract_models::assign_then_computed_gather;
using contract_models::gather_then_assign;

// An assign declared (and scheduled) before a gather of fed indices: run() checks the indices on
// the host before any kernel; run_device() meets them on the device, after the assign ran.
constexpr auto assign_then_fed_gather = [] {
  graph g;
  tensor count = g.variable("count", i64, {}, init::zeros(), false);
  g.output("count", assign_add(count, g.scalar(1, i64)));
  tensor table = g.variable("table", f32, {4, 2}, init::arange(0));
  tensor ids = g.placeholder("ids", i32, {batch});
  g.output("rows", gather(table, ids));
  return g;
};

template <class P> int position_of(group_kind kind) {
  for (int pos = 0; pos < P::plan.n_groups; ++pos)
    if (P::plan.groups[std::size_t(P::plan.schedule[std::size_t(pos)])].kind == kind) return pos;
  return -1;
}

constexpr auto transpose_twice = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {8, 8});
  g.output("y", transpose(x, {1, 0}) * 2.0 + 1.0);
  return g;
};

constexpr auto wide_rows = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 256});
  g.output("y", reduce_sum(x * x, 1));
  return g;
};

template <class T> struct device_array {
  T* p = nullptr;
  explicit device_array(std::size_t n) { REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess); }
  ~device_array() { (void)cudaFree(p); }
};

}  // namespace

TEST_CASE("cuda.executor.per_variable_coherence") {
  auto train = compile<cuda>(mirror_train);
  auto infer = compile<cuda>(mirror_infer, &train.vars());
  const std::vector<double> x{1, 2};
  for (int i = 0; i < 3; ++i) train.run({{"x", view(x, {2})}});
  // The review's case: setting the rate and pushing must not revert w on the device.
  const std::size_t pushed_before = train.device_variables().bytes_pushed();
  train.variable<double>("lr") = 0.25;
  train.push_variables();
  CHECK(train.device_variables().bytes_pushed() - pushed_before == sizeof(double));  // lr only
  // The inference executor shares the device copy: the trained w without any pull.
  CHECK(infer.run({{"x", view(x, {2})}}).get<double>("y").item() == -0.5 * 1 + -2.0 * 2);
  train.run({{"x", view(x, {2})}});
  const auto w = train.variable<double>("w");
  CHECK(w[0].item() == -0.75);
  CHECK(w[1].item() == -2.5);
  // A host edit through vars() reaches the device at the next run, and only then.
  train.vars().get<double>("w")[0] = 10.0;
  CHECK(infer.run({{"x", view(x, {2})}}).get<double>("y").item() == 10.0 * 1 + -2.5 * 2);
}

TEST_CASE("cuda.executor.gather_fault_stops_later_assigns") {
  auto gpu = compile<cuda>(gather_then_assign);
  contract_models::check_gather_fault_stops_assigns(gpu);
}

// The assigns scheduled before the faulting gather ran on the device; the run restores them.
TEST_CASE("cuda.executor.computed_index_fault_rolls_back_earlier_assigns") {
  auto gpu = compile<cuda>(assign_then_computed_gather);
  contract_models::check_computed_index_fault_rolls_back(gpu);
}

TEST_CASE("cuda.executor.run_device_fed_index_fault_rolls_back_earlier_assigns") {
  using P = decltype(compile<cuda>(assign_then_fed_gather))::program_type;
  REQUIRE(position_of<P>(group_kind::assign) >= 0);
  REQUIRE(position_of<P>(group_kind::assign) < position_of<P>(group_kind::gather));
  auto gpu = compile<cuda>(assign_then_fed_gather);
  const std::vector<std::int32_t> good{3, 0}, bad{1, 9};
  device_array<std::int32_t> ids(2);
  auto run_with = [&](const std::vector<std::int32_t>& host) -> decltype(auto) {
    REQUIRE(cudaMemcpy(ids.p, host.data(), 2 * sizeof(std::int32_t), cudaMemcpyHostToDevice) == cudaSuccess);
    return gpu.run_device({{"ids", value_ref{ids.p, i32, dims{2}}}});
  };
  run_with(good);
  CHECK_THROWS_WITH_AS(run_with(bad), doctest::Contains("index 9 is out of range [0, 4)"), kiln::error);
  CHECK(gpu.variable<std::int64_t>("count").item() == 1);
  const auto& out = run_with(good);
  std::vector<float> rows(4);
  REQUIRE(cudaMemcpy(rows.data(), out["rows"].data, 4 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(rows == std::vector<float>{6, 7, 0, 1});
  std::int64_t count = 0;
  REQUIRE(cudaMemcpy(&count, out["count"].data, sizeof count, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(count == 2);
}

TEST_CASE("cuda.executor.arena_survives_out_of_memory") {
  auto gpu = compile<cuda>(wide_rows);
  std::vector<float> x(4 * 256);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 3;
  auto expected = [&](std::int64_t row) {
    double s = 0;
    for (int k = 0; k < 256; ++k) s += double(x[std::size_t(row * 256 + k)]) * x[std::size_t(row * 256 + k)];
    return s;
  };
  gpu.run({{"x", view(x, {4, 256})}});
  // Far more than any GPU holds: the allocation fails before anything reads the feed.
  const std::int64_t huge = std::int64_t(1) << 40;
  CHECK_THROWS_AS(gpu.run({{"x", value_ref{x.data(), f32, dims{huge, 256}}}}), kiln::error);
  const auto& out = gpu.run({{"x", view(x, {4, 256})}});
  for (std::int64_t r = 0; r < 4; ++r) CHECK(double(out.get<float>("y")[r].item()) == expected(r));
}

TEST_CASE("cuda.executor.run_device_own_outputs_and_caller_stream") {
  auto gpu = compile<cuda>(transpose_twice);
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.5f - 7;
  device_array<float> dx(64);
  cudaStream_t caller = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&caller, cudaStreamNonBlocking) == cudaSuccess);
  // Queued on the caller's stream and not waited for here: run_device must wait for it.
  REQUIRE(cudaMemcpyAsync(dx.p, x.data(), 64 * sizeof(float), cudaMemcpyHostToDevice, caller) == cudaSuccess);
  const void* y1 = gpu.run_device({{"x", value_ref{dx.p, f32, dims{8, 8}}}}, caller)["y"].data;
  // The output lives in the executor's arena; feeding it back must not corrupt it mid-run.
  const auto& second = gpu.run_device({{"x", value_ref{y1, f32, dims{8, 8}}}});
  std::vector<float> got(64);
  REQUIRE(cudaMemcpy(got.data(), second["y"].data, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) {
      const float once_ji = x[std::size_t(i * 8 + j)] * 2.0f + 1.0f;  // y1[j][i]
      CHECK(got[std::size_t(i * 8 + j)] == once_ji * 2.0f + 1.0f);    // y2[i][j] = 2 y1[j][i] + 1
    }
  (void)cudaStreamDestroy(caller);
}

// ---- fit() with a CUDA executor -------------------------------------------------------------------

namespace {

// loss = w (+ 0 x the batch): SGD subtracts exactly the step's rate from w. "seen" counts the
// samples of the epoch (its state is reset per epoch).
struct fit_probe {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", f32, {batch, 2});
    tensor y = g.placeholder("y", i32, {batch});
    tensor w = g.variable("w", f64, {});
    tensor batch_term = cast(reduce_mean(x) + reduce_mean(cast(y, f32)), f64) * 0.0;
    tensor loss = w + batch_term;
    g.output("loss", loss);
    g.output("seen", metrics::mean(g, "seen", cast(y, f64) * 0.0 + 1.0));
    minimize(sgd{.learning_rate = schedules::variable(0.5, "lr")}, loss);
    return g;
  }
};

data::dataset probe_data() {
  std::vector<float> features(80);
  std::vector<std::int32_t> labels(40);
  for (std::size_t i = 0; i < 40; ++i) {
    features[2 * i] = float(i);
    features[2 * i + 1] = -float(i);
    labels[i] = std::int32_t(i % 2);
  }
  return data::dataset(std::move(features), {2}, std::move(labels));
}

}  // namespace

TEST_CASE("cuda.executor.fit_and_callbacks") {
  const data::dataset set = probe_data();  // 4 batches of 10 per epoch
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("kiln_cuda_fit_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  SUBCASE("learning-rate scheduler, metric reset, checkpoint") {
    auto gpu = compile<cuda>(fit_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler lr([](std::int64_t, std::int64_t) { return 0.125; }, "lr");
    callbacks::checkpoint ckpt(dir, 5);
    const history h = fit(gpu, pipe, {.epochs = 2, .metrics = {"loss", "seen"}, .callbacks = {&lr, &ckpt}, .verbose = 0});
    // 8 steps of 0.125 (the initial rate 0.5 would give -4): the scheduler's writes reached the GPU.
    CHECK(gpu.variable<double>("w").item() == -1.0);
    CHECK(h["loss"] == std::vector<double>{-0.375, -0.875});  // w before each epoch's last step
    CHECK(gpu.variable<double>("seen/count").item() == 40);   // reset per epoch, not 80
    // The checkpoint holds the device's state, not the stale host copy; restored into another
    // executor's store, it reaches that executor's device copy.
    auto other = compile<cuda>(fit_probe{});
    CHECK(ckpt.restore(other.vars()) == 2);
    std::vector<float> x(20, 0.0f);
    std::vector<std::int32_t> y(10, 0);
    CHECK(other.run({{"x", view(x, {10, 2})}, {"y", view(y, {10})}}).get<double>("loss").item() == -1.0);
  }
  SUBCASE("early stopping restores the best weights on the device") {
    auto gpu = compile<cuda>(fit_probe{});
    data::pipeline pipe(set, {.batch_size = 10, .seed = 1});
    callbacks::learning_rate_scheduler lr([](std::int64_t, std::int64_t) { return 0.125; }, "lr");
    // "loss" maximized: epoch 0 is the best, epoch 1 is worse, patience 0 stops after it.
    callbacks::early_stopping stop({.monitor = "loss", .mode = callbacks::monitor_mode::max, .restore_best_weights = true});
    const history h = fit(gpu, pipe, {.epochs = 5, .callbacks = {&lr, &stop}, .verbose = 0});
    CHECK(h.size() == 2);
    CHECK(stop.best_epoch() == 0);
    // The next step reads w as it was after epoch 0 (4 steps of 0.125), restored on the GPU.
    std::vector<float> x(20, 0.0f);
    std::vector<std::int32_t> y(10, 0);
    CHECK(gpu.run({{"x", view(x, {10, 2})}, {"y", view(y, {10})}}).get<double>("loss").item() == -0.5);
  }
  std::filesystem::remove_all(dir);
}
