// The u8 dtype (frames and images): fed from host bytes, cast to f32 inside the loop that consumes
// it (no f32 copy of the frame is materialized), integer arithmetic that wraps like TensorFlow's
// uint8, reductions, gather indices, variables and checkpoints; checked against plain loops.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <io/checkpoint_directory.hpp>
#include <cstdlib>
#include <filesystem>
#include "test_util.hpp"

using namespace kiln;

namespace {

constexpr auto frames_model = [] {
  graph g;
  tensor x = g.placeholder("frames", u8, {batch, 5, 4, 2});
  tensor w = g.variable("w", f32, {2}, {0.5, -2.0});
  g.output("scaled", cast(x, f32) * (1.0 / 255.0) * w);  // one loop reading the u8 frame
  g.output("wrapped", x + x);                             // u8 arithmetic wraps modulo 256
  g.output("brightest", argmax(reshape(x, {batch, 40})));
  g.output("max", reduce_max(x, axes{1, 2}));
  g.output("picked", gather(g.iota({256}, f32, 0, 0.5), x));  // u8 values as gather indices
  return g;
};

}  // namespace

TEST_CASE("dtypes.u8.frames") {
  auto ex = compile<cpu>(frames_model);
  using P = decltype(ex)::program_type;
  const std::int64_t B = 3;
  std::vector<std::uint8_t> x(std::size_t(B * 40));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::uint8_t((i * 37 + 11) % 256);
  const auto& out = ex.run({{"frames", view(x, {B, 5, 4, 2})}});
  std::vector<double> scaled, wrapped, picked;
  for (std::size_t i = 0; i < x.size(); ++i) {
    scaled.push_back(double(x[i]) / 255.0 * (i % 2 == 0 ? 0.5 : -2.0));
    wrapped.push_back(double(std::uint8_t(x[i] + x[i])));
    picked.push_back(0.5 * double(x[i]));
  }
  kt::check_values("scaled", out.get<float>("scaled"), dims{B, 5, 4, 2}, scaled, 1e-6, 1e-7);
  kt::check_values("wrapped", out.get<std::uint8_t>("wrapped"), dims{B, 5, 4, 2}, wrapped);
  kt::check_values("picked", out.get<float>("picked"), dims{B, 5, 4, 2}, picked);
  std::vector<double> brightest, maxima;
  for (std::int64_t b = 0; b < B; ++b) {
    int best = 0;
    for (int i = 1; i < 40; ++i)
      if (x[std::size_t(b * 40 + i)] > x[std::size_t(b * 40 + best)]) best = i;
    brightest.push_back(best);
    for (int c = 0; c < 2; ++c) {
      std::uint8_t m = 0;
      for (int p = 0; p < 20; ++p) m = std::max(m, x[std::size_t(b * 40 + p * 2 + c)]);
      maxima.push_back(m);
    }
  }
  kt::check_values("brightest", out.get<std::int32_t>("brightest"), dims{B}, brightest);
  kt::check_values("max", out.get<std::uint8_t>("max"), dims{B, 2}, maxima);
  // the cast fuses: no arena buffer holds an f32 copy of the frame
  const auto& p = P::plan;
  int f32_frame_buffers = 0;
  for (std::size_t i = 0; i < P::N; ++i)
    if (p.storage[i] == storage_kind::arena && P::nodes[i].type == f32 && P::nodes[i].kind == op::cast) ++f32_frame_buffers;
  CHECK(f32_frame_buffers == 0);
}

TEST_CASE("dtypes.u8.feed_errors_and_checkpoints") {
  auto ex = compile<cpu>(frames_model);
  std::vector<float> wrong(40);
  try {
    ex.run({{"frames", view(wrong, {1, 5, 4, 2})}});
    FAIL("a f32 feed for a u8 placeholder must throw");
  } catch (const kiln::error& e) {
    CHECK(std::string(e.what()).find("placeholder 'frames' expects u8 [?,5,4,2], got f32 [1,5,4,2]") != std::string::npos);
  }
  constexpr auto state_model = [] {
    graph g;
    tensor s = g.variable("palette", u8, {4}, {0, 17, 254, 255}, false);
    g.output("next", assign(s, s + g.scalar(1, u8)));
    return g;
  };
  auto st = compile<cpu>(state_model);
  st.run();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("kiln-test-dtypes-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  io::checkpoint_manager ckpt(dir, 2);
  ckpt.save(st.vars(), 1);
  st.run();
  CHECK(st.variable<std::uint8_t>("palette").to_vector() == std::vector<std::uint8_t>{2, 19, 0, 1});
  REQUIRE(ckpt.restore_latest(st.vars()) == 1);
  CHECK(st.variable<std::uint8_t>("palette").to_vector() == std::vector<std::uint8_t>{1, 18, 255, 0});
  std::filesystem::remove_all(dir);
}
