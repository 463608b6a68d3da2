#include "harness.cuh"

using namespace kiln;
using cuda_tests::sample;

TEST_CASE("cuda.layout.transpose_slice_concat") {
  for (std::int64_t n : {1, 5}) {
    CAPTURE(n);
    const auto x = sample(std::size_t(n) * 24, 50);
    KILN_COMPARE(layouts, {{"x", view(x, {n, 4, 6})}});
  }
}

TEST_CASE("cuda.layout.gather_one_hot") {
  const auto ids = sample<std::int32_t>(4 * 3, 51, 0, 10, 1);
  const auto q = sample(4 * 6, 52);
  const std::vector<std::int64_t> action{5, 0, 3, 3};
  const std::vector<std::int32_t> picks{3, 0};
  KILN_COMPARE(gathers, {{"ids", view(ids, {4, 3})}, {"q", view(q, {4, 6})}, {"action", view(action, {4})}, {"picks", view(picks, {2})}});
}

TEST_CASE("cuda.layout.gather_out_of_range") {
  auto gpu = compile<cuda>(cuda_models::gathers);
  std::vector<std::int32_t> ids{0, 1, 2, 3, 10, 5};  // 10 is past the 10-row table
  const auto q = sample(2 * 6, 53);
  const std::vector<std::int64_t> action{1, 2};
  const std::vector<std::int32_t> picks{1, 2};
  CHECK_THROWS_WITH_AS(gpu.run({{"ids", view(ids, {2, 3})}, {"q", view(q, {2, 6})}, {"action", view(action, {2})}, {"picks", view(picks, {2})}}),
                       doctest::Contains("out of range"), kiln::error);
  ids[4] = 9;  // the executor stays usable after the report
  const auto& out = gpu.run({{"ids", view(ids, {2, 3})}, {"q", view(q, {2, 6})}, {"action", view(action, {2})}, {"picks", view(picks, {2})}});
  CHECK(out.get<float>("embed").shape() == dims{2, 3, 4});
}

TEST_CASE("cuda.state.sgd_steps") {
  // Variables live on the device; each run reads the previous run's update.
  const auto x = sample(8 * 3, 54), y = sample(8, 55);
  KILN_COMPARE(sgd_step, {{"x", view(x, {8, 3})}, {"y", view(y, {8, 1})}}, {1e-5, true}, 5);
}

TEST_CASE("cuda.state.pull_push") {
  const auto x = sample(8 * 3, 56), y = sample(8, 57);
  const std::initializer_list<feed> feeds{{"x", view(x, {8, 3})}, {"y", view(y, {8, 1})}};
  auto gpu = compile<cuda>(cuda_models::sgd_step);
  cuda_tests::reference_session cpu("sgd_step");
  for (int r = 0; r < 3; ++r) {
    gpu.run(feeds);
    cpu.run(feeds);
  }
  gpu.pull_variables();
  const auto w = gpu.vars().at("w").ref();
  cuda_tests::check_close(cuda_tests::copy_value(w), cpu.variable("w"), 1e-5, true, "w after 3 steps");
  CHECK(gpu.variable<std::int64_t>("step").item() == 3);
  // Edit on the host, push, and the next run starts from the edit.
  gpu.vars().get<float>("b") = 100.0f;
  gpu.push_variables();
  const auto& out = gpu.run(feeds);
  CHECK(out.get<float>("b").item() < 100.0f);
  CHECK(out.get<float>("b").item() > 90.0f);
  CHECK(out.get<std::int64_t>("step").item() == 4);
}

TEST_CASE("cuda.runtime.dynamic_batch") {
  auto gpu = compile<cuda>(cuda_models::dense_layers);
  cuda_tests::reference_session cpu("dense_layers");
  std::int64_t allocations_after_first = -1;
  for (std::int64_t n : {16, 3, 16, 1, 16}) {
    CAPTURE(n);
    const auto x = sample(std::size_t(n) * 32, 60 + std::uint64_t(n));
    const std::initializer_list<feed> feeds{{"x", view(x, {n, 32})}};
    cuda_tests::compare_outputs(gpu.run(feeds), cpu.run(feeds), {1e-5, true}, "batch " + std::to_string(n));
    if (allocations_after_first < 0) allocations_after_first = gpu.arena_allocations();
  }
  CHECK(gpu.arena_allocations() == allocations_after_first);  // the first, largest batch sized the arena
}

TEST_CASE("cuda.runtime.graphs") {
  auto gpu = compile<cuda>(cuda_models::dense_layers, nullptr, cuda_options{.use_graphs = true});
  cuda_tests::reference_session cpu("dense_layers");
  for (std::int64_t n : {4, 4, 4, 9, 9, 4}) {
    CAPTURE(n);
    const auto x = sample(std::size_t(n) * 32, 70 + std::uint64_t(n));
    const std::initializer_list<feed> feeds{{"x", view(x, {n, 32})}};
    cuda_tests::compare_outputs(gpu.run(feeds), cpu.run(feeds), {1e-5, true}, "batch " + std::to_string(n));
  }
  CHECK(gpu.graph_captures() == 3);  // 4, 9, then 4 again
}

TEST_CASE("cuda.runtime.device_feeds") {
  auto gpu = compile<cuda>(cuda_models::dense_layers);
  const auto x = sample(5 * 32, 80);
  const auto expected = cuda_tests::copy_value(gpu.run({{"x", view(x, {5, 32})}})["probs"]);
  float* device_x = nullptr;
  REQUIRE(cudaMalloc(&device_x, x.size() * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMemcpy(device_x, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  const auto& out = gpu.run_device({{"x", view(static_cast<const float*>(device_x), {5, 32})}});
  const value_ref probs = out["probs"];
  std::vector<float> back(std::size_t(probs.shape.elements()));
  REQUIRE(cudaMemcpy(back.data(), probs.data, back.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  for (std::size_t i = 0; i < back.size(); ++i) CHECK(double(back[i]) == expected.data[i]);
  CHECK_THROWS_AS(gpu.run_device({{"x", view(x, {5, 32})}}), kiln::error);  // host memory is refused
  cudaFree(device_x);
}

TEST_CASE("cuda.runtime.feed_errors") {
  auto gpu = compile<cuda>(cuda_models::dense_layers);
  const auto x = sample(5 * 31, 81);
  CHECK_THROWS_WITH_AS(gpu.run({{"x", view(x, {5, 31})}}), doctest::Contains("expects f32 [?,32]"), kiln::error);
  CHECK_THROWS_WITH_AS(gpu.run({}), doctest::Contains("missing feed"), kiln::error);
}
