// The run-time side of an executor: allocation-free reruns (counted with a replaced global
// operator new), determinism, the variable store (sharing, host writes, in-graph assigns,
// initializers), and the kiln::error messages of bad feeds, names and variables.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include "test_util.hpp"

#include "allocation_counter.hpp"  // g_allocations
#include "executor_contract_models.hpp"
#include "mirrored_executor.hpp"

using namespace kiln;
using kt::check_values;

namespace {

// Every kind of group: fused loops, a matmul with an epilogue, reductions (one of them fused and
// large enough to go parallel), layout copies, a gather, and an assign.
constexpr auto mixed_model = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 256});
  tensor actions = g.placeholder("actions", i32, {batch});
  tensor big = g.placeholder("big_input_with_a_long_name", f32, {batch, 100, 200, 3});
  tensor w = g.variable("w", f32, {256, 64}, init::glorot_uniform(3));
  tensor b = g.variable("b", f32, {64}, init::constant(0.1));
  tensor steps = g.variable("steps", i64, {}, init::zeros());
  tensor h = relu(matmul(x, w) + b);
  tensor logits = slice(h, 1, 0, 8);
  tensor m = reduce_max(logits, 1, true);
  tensor e = exp(logits - m);
  tensor p = e / reduce_sum(e, 1, true);
  g.output("probs", p);
  g.output("chosen", gather(p, actions, 1, 1));
  g.output("t", transpose(reshape(concat({logits, logits * 2.0}, 1), {batch, 4, 4}), {0, 2, 1}));
  g.output("energy", reduce_sum(big * big, {1, 2, 3}));
  g.output("steps", assign_add(steps, g.scalar(1, i64)));
  return g;
};

long allocations_during(auto&& f) {
  const long before = g_allocations.load();
  f();
  return g_allocations.load() - before;
}

}  // namespace

TEST_CASE("runtime.allocation_free_reruns") {
  auto ex = compile<cpu>(mixed_model);
  std::vector<float> x = kt::uniform<float>(64 * 256, -1, 1, 1), big = kt::uniform<float>(64 * 60000, -1, 1, 2);
  std::vector<std::int32_t> actions(64);
  for (std::size_t i = 0; i < actions.size(); ++i) actions[i] = std::int32_t(i % 8);
  float sink = 0;
  auto run_batch = [&](std::int64_t B) {
    const auto& out = ex.run({{"x", view(x.data(), {B, 256})},
                              {"actions", view(actions.data(), {B})},
                              {"big_input_with_a_long_name", view(big.data(), {B, 100, 200, 3})}});
    sink += out.get<float>("probs").flat()[0] + out.get<float>("chosen").flat()[0] + out.get<float>("t").flat()[1] +
            out.get<float>("energy").flat()[0] + float(out.get<std::int64_t>("steps").item());
  };
  CHECK(allocations_during([&] { run_batch(8); }) >= 1);  // first run: the arena (this also shows the counter works)
  const auto arenas = ex.arena_allocations();
  CHECK(arenas == 1);
  for (int i = 0; i < 5; ++i) CHECK(allocations_during([&] { run_batch(8); }) == 0);
  CHECK(allocations_during([&] { run_batch(3); }) == 0);  // smaller: the arena is big enough
  CHECK(allocations_during([&] { run_batch(8); }) == 0);
  CHECK(ex.arena_allocations() == arenas);
  CHECK(allocations_during([&] { run_batch(64); }) == 1);  // larger: one new arena
  CHECK(ex.arena_allocations() == arenas + 1);
  for (int i = 0; i < 3; ++i) CHECK(allocations_during([&] { run_batch(64); }) == 0);
  CHECK(allocations_during([&] { run_batch(8); }) == 0);
  // host access to variables does not allocate either
  CHECK(allocations_during([&] { sink += ex.variable<float>("w")[3][5]; }) == 0);
  CHECK(ex.variable<std::int64_t>("steps").item() == 13);
  CHECK(std::isfinite(sink));
}

TEST_CASE("runtime.allocation_free.no_feeds") {
  static constexpr auto model = [] {
    graph g;
    tensor c = g.variable("counter", i32, {}, init::zeros());
    tensor v = g.variable("v", f64, {1000}, init::arange(0, 0.5));
    g.output("c", assign_add(c, g.scalar(1, i32)));
    g.output("s", reduce_sum(v * v));
    return g;
  };
  auto ex = compile<cpu>(model);
  ex.run();
  double sink = 0;
  CHECK(allocations_during([&] {
          for (int i = 0; i < 10; ++i) sink += ex.run().get<double>("s").item();
        }) == 0);
  CHECK(ex.variable<std::int32_t>("counter").item() == 11);
  double want = 0;
  for (int i = 0; i < 1000; ++i) want += (0.5 * i) * (0.5 * i);
  CHECK(sink == doctest::Approx(10 * want).epsilon(1e-12));
}

// ---- determinism ---------------------------------------------------------------------------------------

namespace {
constexpr auto determinism_model = [] {
  graph g;
  tensor v = g.placeholder("v", f32, {std::int64_t(1) << 22});
  tensor m = g.placeholder("m", f32, {batch, 512});
  tensor w = g.placeholder("w", f32, {512, 512});
  g.output("sum", reduce_sum(v));
  g.output("sum_sq", reduce_sum(exp(v) * v));
  g.output("mean_cols", reduce_mean(m, 0));
  g.output("prod", tanh(matmul(m, w)));
  return g;
};
}  // namespace

TEST_CASE("runtime.determinism.bitwise") {
  const auto v = kt::uniform<float>(std::size_t(1) << 22, -1, 1, 9);
  const auto m = kt::uniform<float>(300 * 512, -1, 1, 10), w = kt::uniform<float>(512 * 512, -0.1, 0.1, 11);
  auto ex = compile<cpu>(determinism_model);
  auto snapshot = [&] {
    const auto& out = ex.run({{"v", view(v, {std::int64_t(1) << 22})}, {"m", view(m, {300, 512})}, {"w", view(w, {512, 512})}});
    std::vector<float> all;
    for (const char* name : {"sum", "sum_sq", "mean_cols", "prod"}) {
      const auto t = out.get<float>(name);
      all.insert(all.end(), t.flat().begin(), t.flat().end());
    }
    return all;
  };
  const auto first = snapshot();
  double want = 0;
  for (float x : v) want += x;
  CHECK(double(first[0]) == doctest::Approx(want).epsilon(1e-4).scale(1e3));
  for (int i = 0; i < 4; ++i) {
    const auto again = snapshot();
    REQUIRE(again.size() == first.size());
    CHECK(std::memcmp(again.data(), first.data(), first.size() * sizeof(float)) == 0);
  }
  // a second executor of the same program gives the same bits
  auto other = compile<cpu>(determinism_model);
  const auto& out = other.run({{"v", view(v, {std::int64_t(1) << 22})}, {"m", view(m, {300, 512})}, {"w", view(w, {512, 512})}});
  CHECK(std::memcmp(&out.get<float>("sum").item(), &first[0], sizeof(float)) == 0);
  CHECK(std::memcmp(&out.get<float>("sum_sq").item(), &first[1], sizeof(float)) == 0);
}

// ---- variables ----------------------------------------------------------------------------------------------

namespace {
constexpr auto train_model = [] {
  graph g;
  tensor w = g.variable("w", f32, {3}, {1.0, -2.0, 0.5});
  tensor target = g.placeholder("target", f32, {3});
  tensor lr = g.placeholder("lr", f32, {});
  tensor grad = 2.0 * (w - target);  // d/dw of |w - target|^2
  g.output("loss", reduce_sum(square(w - target)));  // before the step
  g.output("w", assign_sub(w, lr * grad));
  return g;
};
constexpr auto infer_model = [] {
  graph g;
  tensor w = g.variable("w", f32, {3}, {1.0, -2.0, 0.5});
  tensor x = g.placeholder("x", f32, {batch, 3});
  g.output("y", reduce_sum(x * w, 1));
  return g;
};
}  // namespace

TEST_CASE("runtime.variables.shared_store_and_sgd") {
  auto train = compile<cpu>(train_model);
  auto infer = compile<cpu>(infer_model, &train.vars());
  CHECK(train.vars().size() == 1);
  const std::vector<float> target{3, 1, -1}, lr{0.25f}, x{1, 0, 0, 0, 1, 1};
  double w[3] = {1.0, -2.0, 0.5};
  for (int step = 0; step < 4; ++step) {
    double loss = 0;
    for (int i = 0; i < 3; ++i) loss += (w[i] - target[std::size_t(i)]) * (w[i] - target[std::size_t(i)]);
    for (int i = 0; i < 3; ++i) w[i] -= 0.25 * 2 * (w[i] - target[std::size_t(i)]);
    const auto& out = train.run({{"target", view(target, {3})}, {"lr", view(lr, {})}});
    check_values<float>("loss", out.get<float>("loss"), {}, {loss}, 1e-6, 0);
    check_values<float>("w", out.get<float>("w"), {3}, {w[0], w[1], w[2]}, 1e-6, 0);
    // the inference executor reads the same storage
    check_values<float>("y", infer.run({{"x", view(x, {2, 3})}}).get<float>("y"), {2}, {w[0], w[1] + w[2]}, 1e-6, 1e-7);
  }
  // by hand: lr 0.25 halves the distance to the target each step, so after 4 steps w = t + (w0 - t) / 16
  CHECK(double(train.variable<float>("w")[0].item()) == doctest::Approx(3 - 2.0 / 16));
  CHECK(double(infer.variable<float>("w")[2].item()) == doctest::Approx(-1 + 1.5 / 16));
}

TEST_CASE("runtime.variables.host_writes") {
  static constexpr auto model = [] {
    graph g;
    tensor m = g.variable("m", f32, {4, 3}, init::zeros());
    tensor b = g.variable("b", i32, {10}, init::arange(0));
    g.output("m2", m * 2.0);
    g.output("bsum", reduce_sum(b));
    return g;
  };
  auto ex = compile<cpu>(model);
  CHECK(ex.run().get<std::int32_t>("bsum").item() == 45);
  ex.variable<std::int32_t>("b")[1] = 10;              // b[1].assign(10)
  ex.variable<std::int32_t>("b").slice(7, 10) = -1;    // b[7:10] = -1
  CHECK(ex.run().get<std::int32_t>("bsum").item() == 0 + 10 + 2 + 3 + 4 + 5 + 6 - 3);
  auto m = ex.variable<float>("m");
  m[1] = 0.5f;                       // a whole row
  m.slice(2, 4)[0][2] = 7;           // one element through a slice of rows
  m.at({0, 1}) = -1;
  const std::vector<float> row{1, 2, 3};
  m[3].assign(row);
  check_values<float>("m2", ex.run().get<float>("m2"), {4, 3}, {0, -2, 0, 1, 1, 1, 0, 0, 14, 2, 4, 6});
  CHECK_THROWS_AS(m[4], kiln::error);
  CHECK_THROWS_AS(m.slice(3, 5), kiln::error);
}

TEST_CASE("runtime.variables.assign_counter") {
  static constexpr auto model = [] {
    graph g;
    tensor c = g.variable("c", i64, {}, init::constant(5));
    tensor acc = g.variable("acc", f64, {2}, init::zeros());
    tensor x = g.placeholder("x", f64, {2});
    g.output("before", c * 1.0);
    g.output("c", assign_add(c, g.scalar(1, i64)));
    g.output("acc", assign_add(acc, x * x));
    return g;
  };
  auto ex = compile<cpu>(model);
  const std::vector<double> x{1.5, -2};
  for (int i = 0; i < 4; ++i) {
    const auto& out = ex.run({{"x", view(x, {2})}});
    CHECK(out.get<std::int64_t>("before").item() == 5 + i);
    CHECK(out.get<std::int64_t>("c").item() == 6 + i);
    check_values<double>("acc", out.get<double>("acc"), {2}, {2.25 * (i + 1), 4.0 * (i + 1)});
  }
}

TEST_CASE("runtime.variables.assign_values_of_every_kind") {
  static constexpr auto model = [] {
    graph g;
    tensor m = g.variable("m", f32, {2, 3}, init::arange(0));
    tensor row = g.placeholder("row", f32, {3});
    tensor s = g.variable("s", f32, {3}, init::zeros());
    tensor t = g.variable("t", f32, {3, 2}, init::zeros());
    tensor k = g.variable("k", f32, {2, 3}, init::constant(7));
    g.output("m", assign(m, m * 0.0 + row));          // broadcast value: every row becomes `row`
    g.output("s", assign(s, reduce_sum(m, 0)));        // a reduction of another variable's old value
    g.output("t", assign(t, transpose(m)));            // a copy of the old value
    g.output("k", assign(k, 1.5));                     // a scalar
    g.output("three", g.scalar(3, f32));               // an immediate as an output
    return g;
  };
  auto ex = compile<cpu>(model);
  const std::vector<float> row{10, 20, 30};
  const auto& out = ex.run({{"row", view(row, {3})}});
  check_values<float>("m", out.get<float>("m"), {2, 3}, {10, 20, 30, 10, 20, 30});
  check_values<float>("s", out.get<float>("s"), {3}, {3, 5, 7});            // columns of [[0,1,2],[3,4,5]]
  check_values<float>("t", out.get<float>("t"), {3, 2}, {0, 3, 1, 4, 2, 5});
  check_values<float>("k", out.get<float>("k"), {2, 3}, {1.5, 1.5, 1.5, 1.5, 1.5, 1.5});
  check_values<float>("three", out.get<float>("three"), {}, {3});
  const auto& again = ex.run({{"row", view(row, {3})}});
  check_values<float>("s", again.get<float>("s"), {3}, {20, 40, 60});
  check_values<float>("t", again.get<float>("t"), {3, 2}, {10, 10, 20, 20, 30, 30});
}

// ---- initializers ------------------------------------------------------------------------------------------

namespace {
constexpr auto init_model = [] {
  graph g;
  g.output("zeros", g.variable("zeros", f32, {5}, init::zeros()));
  g.output("constant", g.variable("constant", f64, {2, 2}, init::constant(-1.25)));
  g.output("uniform", g.variable("uniform", f32, {100000}, init::uniform(-2, 6, 1)));
  g.output("normal", g.variable("normal", f64, {200000}, init::normal(2, 3, 2)));
  g.output("truncated", g.variable("truncated", f32, {100000}, init::truncated_normal(-1, 0.5, 3)));
  g.output("he", g.variable("he", f32, {784, 300}, init::he_normal(4)));
  g.output("glorot", g.variable("glorot", f32, {784, 300}, init::glorot_uniform(5)));
  g.output("arange", g.variable("arange", i64, {2, 3}, init::arange(10, -3)));
  g.output("values", g.variable("values", f32, {2, 2}, {1.5, -2, 0, 8}));
  g.output("default_seed", g.variable("default_seed", f32, {1000}, init::uniform(0, 1)));
  return g;
};
constexpr auto init_model_other_seed = [] {
  graph g;
  g.output("uniform", g.variable("uniform", f32, {100000}, init::uniform(-2, 6, 99)));
  return g;
};

struct moments {
  double mean = 0, stddev = 0, lo = 1e300, hi = -1e300;
};
template <class T> moments moments_of(tensor_view<const T> v) {
  moments m;
  for (T x : v.flat()) {
    m.mean += double(x);
    m.lo = std::min(m.lo, double(x));
    m.hi = std::max(m.hi, double(x));
  }
  m.mean /= double(v.size());
  for (T x : v.flat()) m.stddev += (double(x) - m.mean) * (double(x) - m.mean);
  m.stddev = std::sqrt(m.stddev / double(v.size()));
  return m;
}
}  // namespace

TEST_CASE("runtime.variables.initializers") {
  auto ex = compile<cpu>(init_model);
  const auto& out = ex.run();
  check_values<float>("zeros", out.get<float>("zeros"), {5}, {0, 0, 0, 0, 0});
  check_values<double>("constant", out.get<double>("constant"), {2, 2}, {-1.25, -1.25, -1.25, -1.25});
  check_values<std::int64_t>("arange", out.get<std::int64_t>("arange"), {2, 3}, {10, 7, 4, 1, -2, -5});
  check_values<float>("values", out.get<float>("values"), {2, 2}, {1.5, -2, 0, 8});

  const moments u = moments_of(out.get<float>("uniform"));
  CHECK(u.lo >= -2);
  CHECK(u.hi < 6);
  CHECK(u.lo < -1.99);
  CHECK(u.hi > 5.99);
  CHECK(std::fabs(u.mean - 2) < 0.05);                      // sd of the mean: 8/sqrt(12)/sqrt(1e5) = 0.007
  CHECK(std::fabs(u.stddev - 8 / std::sqrt(12.0)) < 0.02);

  const moments n = moments_of(out.get<double>("normal"));
  CHECK(std::fabs(n.mean - 2) < 0.03);                      // 3/sqrt(2e5) = 0.0067
  CHECK(std::fabs(n.stddev - 3) < 0.03);
  CHECK(n.hi > 2 + 3 * 3.5);                                // 200k draws reach beyond 3.5 sd
  CHECK(n.lo < 2 - 3 * 3.5);

  const moments t = moments_of(out.get<float>("truncated"));
  CHECK(t.lo >= -1 - 2 * 0.5 - 1e-6);                       // within 2 stddev
  CHECK(t.hi <= -1 + 2 * 0.5 + 1e-6);
  CHECK(t.lo < -1.99);
  CHECK(t.hi > -0.01);
  CHECK(std::fabs(t.mean + 1) < 0.01);
  CHECK(std::fabs(t.stddev - 0.5 * 0.8796) < 0.01);         // sd of a normal truncated at 2 sd: 0.8796

  const moments h = moments_of(out.get<float>("he"));
  const double he_sd = std::sqrt(2.0 / 784);                // fan_in = 784
  CHECK(std::fabs(h.mean) < 0.01 * he_sd * 10);
  CHECK(std::fabs(h.stddev - he_sd) < 0.02 * he_sd);
  CHECK(h.hi <= 2 * he_sd / 0.87962566103423978 + 1e-6);     // truncated at 2 of its (scaled) sd
  CHECK(h.lo >= -2 * he_sd / 0.87962566103423978 - 1e-6);

  const moments gl = moments_of(out.get<float>("glorot"));
  const double limit = std::sqrt(6.0 / (784 + 300));
  CHECK(gl.hi <= limit);
  CHECK(gl.lo >= -limit);
  CHECK(gl.hi > 0.99 * limit);
  CHECK(gl.lo < -0.99 * limit);
  CHECK(std::fabs(gl.stddev - limit / std::sqrt(3.0)) < 0.01 * limit);

  // seeded: a fresh store gives the same tensors; another seed gives others
  auto again = compile<cpu>(init_model);
  const auto& out2 = again.run();
  for (const char* name : {"uniform", "truncated", "he", "glorot", "default_seed"}) {
    const auto a = out.get<float>(name), b = out2.get<float>(name);
    CHECK_MESSAGE(std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(float)) == 0, name);
  }
  CHECK(std::memcmp(out.get<double>("normal").data(), out2.get<double>("normal").data(), 200000 * sizeof(double)) == 0);
  auto other = compile<cpu>(init_model_other_seed);
  const auto a = out.get<float>("uniform"), b = other.run().get<float>("uniform");
  int same = 0;
  for (std::int64_t i = 0; i < a.size(); ++i) same += a.flat()[std::size_t(i)] == b.flat()[std::size_t(i)];
  CHECK(same < 100);
  // values within one tensor are not repeated (the counter advances)
  const auto d = out.get<float>("default_seed");
  CHECK(d.flat()[0] != d.flat()[1]);
  CHECK(moments_of(d).lo >= 0);
  CHECK(moments_of(d).hi < 1);
}

// ---- errors --------------------------------------------------------------------------------------------------

namespace {
constexpr auto feeds_model = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {batch, 3});
  tensor b = g.placeholder("b", f32, {batch, 1});
  tensor unused = g.placeholder("unused", f32, {2});
  (void)unused;
  tensor w = g.variable("w", f32, {3}, init::constant(1));
  g.output("y", a * b + w);
  return g;
};
constexpr auto redeclare_model = [] {
  graph g;
  tensor w = g.variable("w", f32, {4}, init::constant(1));
  g.output("y", w * 2.0);
  return g;
};
constexpr auto redeclare_dtype_model = [] {
  graph g;
  tensor w = g.variable("w", f64, {3}, init::constant(1));
  g.output("y", w * 2.0);
  return g;
};

// The message of the kiln::error that f throws ("" if it throws none).
template <class F> std::string message_of(F&& f) {
  try {
    f();
  } catch (const kiln::error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("runtime.errors.feeds") {
  auto ex = compile<cpu>(feeds_model);
  const std::vector<float> a6(6, 1.0f), b2(2, 2.0f), b3(3, 2.0f), a8(8, 1.0f);
  const std::vector<double> d6(6, 1.0);
  const std::vector<std::int32_t> i6(6, 1);
  // a correct run first
  check_values<float>("y", ex.run({{"a", view(a6, {2, 3})}, {"b", view(b2, {2, 1})}}).get<float>("y"), {2, 3}, {3, 3, 3, 3, 3, 3});
  // a declared placeholder that no output needs may be fed or not
  const std::vector<float> u2(2, 0.0f);
  CHECK_NOTHROW(ex.run({{"a", view(a6, {2, 3})}, {"b", view(b2, {2, 1})}, {"unused", view(u2, {2})}}));

  SUBCASE("missing feed") {
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(a6, {2, 3})}}), doctest::Contains("missing feed for placeholder 'b' (f32 [?,1])"), kiln::error);
  }
  SUBCASE("unknown feed name") {
    const std::string m = message_of([&] { ex.run({{"a", view(a6, {2, 3})}, {"b", view(b2, {2, 1})}, {"c", view(b2, {2, 1})}}); });
    CHECK(m.find("feed 'c' matches no placeholder") != std::string::npos);
    CHECK(m.find("a, b, unused") != std::string::npos);  // the placeholders it could have been
  }
  SUBCASE("wrong dtype") {
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(d6, {2, 3})}, {"b", view(b2, {2, 1})}}),
                         doctest::Contains("placeholder 'a' expects f32 [?,3], got f64 [2,3]"), kiln::error);
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(i6, {2, 3})}, {"b", view(b2, {2, 1})}}),
                         doctest::Contains("placeholder 'a' expects f32 [?,3], got i32 [2,3]"), kiln::error);
  }
  SUBCASE("wrong rank") {
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(a6, {6})}, {"b", view(b2, {2, 1})}}),
                         doctest::Contains("placeholder 'a' expects f32 [?,3], got f32 [6]"), kiln::error);
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(a6, {1, 2, 3})}, {"b", view(b2, {2, 1})}}),
                         doctest::Contains("placeholder 'a' expects f32 [?,3], got f32 [1,2,3]"), kiln::error);
  }
  SUBCASE("wrong static dim") {
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(a8, {2, 4})}, {"b", view(b2, {2, 1})}}),
                         doctest::Contains("placeholder 'a' expects f32 [?,3], got f32 [2,4]"), kiln::error);
    CHECK_THROWS_WITH_AS(ex.run({{"a", view(a6, {2, 3})}, {"b", view(a6, {2, 3})}}),
                         doctest::Contains("placeholder 'b' expects f32 [?,1], got f32 [2,3]"), kiln::error);
  }
  SUBCASE("inconsistent batch") {
    const std::string m = message_of([&] { ex.run({{"a", view(a6, {2, 3})}, {"b", view(b3, {3, 1})}}); });
    CHECK(m.find("'b' has batch 3") != std::string::npos);
    CHECK(m.find("'a' has batch 2") != std::string::npos);
    CHECK_THROWS_AS(ex.run({{"a", view(a6, {2, 3})}, {"b", view(b3, {3, 1})}}), kiln::error);
  }
  SUBCASE("unknown output") {
    const auto& out = ex.run({{"a", view(a6, {2, 3})}, {"b", view(b2, {2, 1})}});
    CHECK_THROWS_WITH_AS(out.get<float>("z"), doctest::Contains("unknown output 'z'; outputs are: y"), kiln::error);
    CHECK_THROWS_WITH_AS(out.get<double>("y"), doctest::Contains("value is f32, requested as f64"), kiln::error);
  }
  // after every failed run, a good one still works
  check_values<float>("y", ex.run({{"a", view(a6, {2, 3})}, {"b", view(b2, {2, 1})}}).get<float>("y"), {2, 3}, {3, 3, 3, 3, 3, 3});
}

TEST_CASE("runtime.errors.variables") {
  auto ex = compile<cpu>(feeds_model);
  CHECK_THROWS_WITH_AS(ex.variable<float>("nope"), doctest::Contains("unknown variable 'nope'; the store has: w"), kiln::error);
  CHECK_THROWS_WITH_AS(ex.variable<double>("w"), doctest::Contains("variable 'w' is f32, requested as f64"), kiln::error);
  {
    const std::string m = message_of([&] { auto other = compile<cpu>(redeclare_model, &ex.vars()); });
    CHECK(m.find("variable 'w' exists as f32 [3]") != std::string::npos);
    CHECK(m.find("declares it as f32 [4]") != std::string::npos);
  }
  {
    const std::string m = message_of([&] { auto other = compile<cpu>(redeclare_dtype_model, &ex.vars()); });
    CHECK(m.find("variable 'w' exists as f32 [3]") != std::string::npos);
    CHECK(m.find("declares it as f64 [3]") != std::string::npos);
  }
  // in separate stores the two declarations do not meet
  auto alone = compile<cpu>(redeclare_model);
  check_values<float>("y", alone.run().get<float>("y"), {4}, {2, 2, 2, 2});
}

// graph::seed: variables without a seed of their own draw from the graph's seed; a variable with
// its own seed ignores it. (Before, both executors hard-coded the seed and graph::seed was dead.)
template <std::uint64_t GraphSeed> constexpr auto seeded_graph = [] {
  graph g;
  g.seed = GraphSeed;
  g.output("drawn", g.variable("drawn", f32, {64}, init::uniform(-1, 1)));
  g.output("own", g.variable("own", f32, {64}, init::uniform(-1, 1, 99)));
  return g;
};

TEST_CASE("runtime.variables.graph_seed") {
  auto a = compile<cpu>(seeded_graph<1>);
  auto a2 = compile<cpu>(seeded_graph<1>);
  auto b = compile<cpu>(seeded_graph<2>);
  const auto da = a.run().get<float>("drawn").to_vector(), da2 = a2.run().get<float>("drawn").to_vector();
  const auto db = b.run().get<float>("drawn").to_vector();
  CHECK(da == da2);                                  // reproducible for one seed
  int differing = 0;
  for (std::size_t i = 0; i < da.size(); ++i) differing += da[i] != db[i];
  CHECK(differing == 64);                            // another graph seed draws other values
  for (float v : db) CHECK((v >= -1 && v < 1));
  CHECK(a.run().get<float>("own").to_vector() == b.run().get<float>("own").to_vector());  // own seed wins
}

// ---- the executor contract (runtime/binding.hpp, runtime/mirror.hpp) -------------------------------

namespace {
using contract_models::mirror_infer;  // tests/executor_contract_models.hpp
using contract_models::mirror_train;
tensor_view<const double> read_only(tensor_view<double> v) { return {v.data(), v.shape()}; }
}  // namespace

// The CUDA executor's variable bookkeeping, on a CPU "device" (tests/mirrored_executor.hpp runs
// the same mirrored_variables code with memcpy): the review's scenario
// `variable("lr") = x; push_variables();` must not revert what the runs trained on the device,
// and an executor sharing the store reads the device copy the other one wrote.
TEST_CASE("runtime.executor_contract.mirror_coherence") {
  kt::mirrored_store s;
  kt::mirrored_executor<decltype(mirror_train)> train(s);
  kt::mirrored_executor<decltype(mirror_infer)> infer(s);
  const int w_index = s.mirror.find("w"), lr_index = s.mirror.find("lr");
  REQUIRE(s.mirror.size() == 2);
  const std::vector<double> x{1, 2};
  for (int i = 0; i < 3; ++i) train.run({{"x", view(x, {2})}});
  // w = 1 - 3 * 0.5 * x on the device; the host copy is stale until someone asks for it.
  check_values<double>("device w", read_only(s.device.get<double>("w")), {2}, {-0.5, -2});
  check_values<double>("host w", read_only(s.host.get<double>("w")), {2}, {1, 1});
  CHECK(s.mirror.state(w_index) == residency::device_newer);
  CHECK(s.mirror.state(lr_index) == residency::in_sync);

  train.variable<double>("lr") = 0.25;
  train.push_variables();
  CHECK(s.mirror.bytes_pushed() == sizeof(double));  // lr only
  check_values<double>("device w after pushing lr", read_only(s.device.get<double>("w")), {2}, {-0.5, -2});
  CHECK(s.device.get<double>("lr").item() == 0.25);
  check_values<double>("host w", read_only(s.host.get<double>("w")), {2}, {1, 1});  // nothing pulled it

  // The inference executor shares the device copy: it sees the trained w without a pull.
  CHECK(infer.run({{"x", view(x, {2})}}).get<double>("y").item() == -0.5 * 1 + -2.0 * 2);
  train.run({{"x", view(x, {2})}});  // w -= 0.25 * x
  check_values<double>("w pulled by variable()", read_only(train.variable<double>("w")), {2}, {-0.75, -2.5});
  CHECK(s.mirror.bytes_pulled() == 2 * sizeof(double));
  CHECK(s.mirror.state(w_index) == residency::host_newer);  // handed out for editing
  // A run pushes what was handed out; no copy reverts anything.
  train.vars();
  train.run({{"x", view(x, {2})}});
  check_values<double>("device w", read_only(s.device.get<double>("w")), {2}, {-1.0, -3.0});
  // Bookkeeping misuse is an error, not a silent revert.
  train.variable<double>("w");
  CHECK_THROWS_WITH_AS(s.mirror.device_written(w_index), doctest::Contains("was edited on the host and not pushed"), kiln::error);
}

// A bad gather index throws, and no group after the gather changes a variable: the CPU throws
// from the gather; the CUDA executor's assign kernels test the fault flag (tests/cuda/test_layout.cu
// checks the same values on a GPU).
TEST_CASE("runtime.executor_contract.gather_fault_before_assigns") {
  auto ex = compile<cpu>(contract_models::gather_then_assign);
  contract_models::check_gather_fault_stops_assigns(ex);
}

// The shared feed validation: a placeholder fed twice is an error (the second would silently win).
TEST_CASE("runtime.executor_contract.feed_twice") {
  static constexpr auto model = [] {
    graph g;
    g.output("y", g.placeholder("x", f32, {2}) * 2.0);
    return g;
  };
  auto ex = compile<cpu>(model);
  const std::vector<float> a{1, 2}, b{3, 4};
  CHECK_THROWS_WITH_AS(ex.run({{"x", view(a, {2})}, {"x", view(b, {2})}}), "kiln: placeholder 'x' is fed twice", kiln::error);
  check_values<float>("y", ex.run({{"x", view(b, {2})}}).get<float>("y"), {2}, {6, 8});
}
