// The compile-time plan, checked with static_assert where the property is a constant: common
// subexpressions, fusion groups, matmul epilogues, buffer reuse, in-place loops, the schedule of
// assigns; plus the describe<P>() and to_dot<P>() views and a run of each planned graph.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_util.hpp"

using namespace kiln;

namespace {

template <class P> constexpr int count_kind(op k) {
  int c = 0;
  for (const node& n : P::nodes) c += n.kind == k;
  return c;
}
template <class P> constexpr int arena_values() {
  int c = 0;
  for (std::size_t i = 0; i < P::N; ++i) c += P::plan.storage[i] == storage_kind::arena;
  return c;
}
template <class P> constexpr int position_of_group(int g) {
  for (int s = 0; s < P::plan.n_groups; ++s)
    if (P::plan.schedule[std::size_t(s)] == g) return s;
  return -1;
}
template <class P> constexpr int first_node(op k) {
  for (std::size_t i = 0; i < P::N; ++i)
    if (P::nodes[i].kind == k) return int(i);
  return -1;
}

// ---- common subexpressions ----------------------------------------------------------------------------

constexpr auto cse_twice = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {4});
  tensor a = exp(x) * 2.0;
  tensor b = exp(x) * 2.0;  // the same computation again
  g.output("y", a + b);
  return g;
};
constexpr auto cse_once = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {4});
  tensor a = exp(x) * 2.0;
  g.output("y", a + a);
  return g;
};
using cse_twice_p = program<decltype(cse_twice)>;
using cse_once_p = program<decltype(cse_once)>;
// x, exp, 2.0, mul, add
static_assert(cse_twice_p::N == 5);
static_assert(cse_twice_p::N == cse_once_p::N);
static_assert(count_kind<cse_twice_p>(op::exp) == 1);
static_assert(cse_twice_p::nodes[4].kind == op::add && cse_twice_p::nodes[4].in[0] == cse_twice_p::nodes[4].in[1]);

constexpr auto cse_constants = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {3});
  tensor c1 = g.constant({1, 2, 3}, f32, {3});
  tensor c2 = g.constant({1, 2, 3}, f32, {3});  // identical constant: same node, pool not grown
  tensor c3 = g.constant({1, 2, 4}, f32, {3});
  g.output("y", (x + c1) * c2 - c3 + (x + 1.0) * (x * 1.0));  // 1.0 used twice: one scalar node
  tensor p = g.placeholder("x", f32, {3});  // the same placeholder declared again
  g.output("z", p * 3.0);
  return g;
};
using cse_constants_p = program<decltype(cse_constants)>;
static_assert(count_kind<cse_constants_p>(op::constant) == 2);
static_assert(cse_constants_p::NP == 6);
static_assert(count_kind<cse_constants_p>(op::scalar) == 2);  // 1.0 and 3.0
static_assert(count_kind<cse_constants_p>(op::placeholder) == 1);

// ---- fusion -----------------------------------------------------------------------------------------------

constexpr auto fused_chain = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 8, 16});
  tensor w = g.placeholder("w", f32, {16});
  tensor b = g.placeholder("b", f32, {8, 1});
  tensor c = g.placeholder("c", f32, {});
  g.output("y", sigmoid(x * w + b) * 2.0 - exp(-abs(x)) / (c + 1.0) + g.iota({16}, f32));
  return g;
};
using fused_chain_p = program<decltype(fused_chain)>;
static_assert(fused_chain_p::plan.n_groups == 1);
static_assert(fused_chain_p::plan.count_groups(group_kind::elementwise) == 1);
static_assert(fused_chain_p::plan.n_slots == 1);        // the output: no intermediate buffers
static_assert(arena_values<fused_chain_p>() == 1);
static_assert(fused_chain_p::plan.slots[0].fixed == 0 && fused_chain_p::plan.slots[0].per_batch == 8 * 16 * 4);

constexpr auto reduce_fused = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {1000});
  tensor a = g.placeholder("a", f32, {100, 50});
  tensor b = g.placeholder("b", f32, {50});
  g.output("ss", reduce_sum(x * x));
  g.output("mse", reduce_mean(square(a - b), 1));
  return g;
};
using reduce_fused_p = program<decltype(reduce_fused)>;
// each reduction reads its elementwise input inside its own loop: 2 groups, 2 output buffers
static_assert(reduce_fused_p::plan.n_groups == 2);
static_assert(reduce_fused_p::plan.count_groups(group_kind::reduction) == 2);
static_assert(reduce_fused_p::plan.count_groups(group_kind::elementwise) == 0);
static_assert(reduce_fused_p::plan.n_slots == 2);

// an output is materialized even when its consumer could fuse it; so is a value with two consumers
constexpr auto fusion_barriers = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {256});
  tensor e = exp(x);
  g.output("e", e);
  tensor t = tanh(x);
  // t * t (one node) has two consumers, so it gets its own loop, into which tanh fuses
  g.output("y", e + t * t + sqrt(t * t + 1.0));
  return g;
};
using fusion_barriers_p = program<decltype(fusion_barriers)>;
static_assert(fusion_barriers_p::plan.n_groups == 3);
static_assert(fusion_barriers_p::plan.count_groups(group_kind::elementwise) == 3);

// ---- matmul epilogue -----------------------------------------------------------------------------------

constexpr auto dense = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 784});
  tensor w = g.variable("w", f32, {784, 300}, init::glorot_uniform(1));
  tensor b = g.variable("b", f32, {300}, init::constant(0.1));
  g.output("h", relu(matmul(x, w) + b));
  return g;
};
using dense_p = program<decltype(dense)>;
static_assert(dense_p::plan.n_groups == 1);
static_assert(dense_p::plan.groups[0].kind == group_kind::elementwise);
static_assert(dense_p::plan.groups[0].anchor == first_node<dense_p>(op::matmul));
static_assert(dense_p::plan.count_groups(group_kind::matmul) == 0);
static_assert(dense_p::plan.storage[std::size_t(first_node<dense_p>(op::matmul))] == storage_kind::alias);
static_assert(dense_p::plan.n_slots == 1);

constexpr auto dense_shared_product = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 4});
  tensor w = g.placeholder("w", f32, {4, 8});
  tensor m = matmul(x, w);
  g.output("a", relu(m));
  g.output("b", tanh(m));  // two readers: the product gets its own buffer
  return g;
};
using dense_shared_p = program<decltype(dense_shared_product)>;
static_assert(dense_shared_p::plan.count_groups(group_kind::matmul) == 1);
static_assert(dense_shared_p::plan.groups[1].anchor < 0 && dense_shared_p::plan.groups[2].anchor < 0);

// ---- buffers --------------------------------------------------------------------------------------------

constexpr auto layout_chain = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {16, 16});
  tensor t = x;
  for (int i = 0; i < 8; ++i) t = transpose(slice(t, 0, 0, 16 - i));  // 16 copies, none fusable
  g.output("y", t);
  return g;
};
using layout_chain_p = program<decltype(layout_chain)>;
static_assert(layout_chain_p::plan.count_groups(group_kind::layout) == 15);  // the first slice is the identity
static_assert(arena_values<layout_chain_p>() == 15);
static_assert(layout_chain_p::plan.n_slots == 2);  // each value dies once its single reader ran

constexpr auto matmul_chain = [] {
  graph g;
  tensor x = g.placeholder("x", f64, {batch, 32});
  tensor w = g.placeholder("w", f64, {32, 32});
  tensor t = x;
  for (int i = 0; i < 6; ++i) t = matmul(t, w);
  g.output("y", t);
  return g;
};
using matmul_chain_p = program<decltype(matmul_chain)>;
static_assert(matmul_chain_p::plan.count_groups(group_kind::matmul) == 6);
static_assert(matmul_chain_p::plan.n_slots == 2);
static_assert(matmul_chain_p::plan.arena_bytes(10) == 2 * 10 * 32 * 8);

constexpr auto in_place = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {64, 32});
  tensor t = transpose(x);            // layout group: arena value
  tensor y = exp(t) * 2.0 + 1.0;      // elementwise over t's shape; t's last reader
  g.output("y", y);
  return g;
};
using in_place_p = program<decltype(in_place)>;
constexpr int in_place_t = first_node<in_place_p>(op::transpose);
constexpr int in_place_y = int(in_place_p::N) - 1;
static_assert(in_place_p::plan.n_groups == 2);
static_assert(in_place_p::plan.n_slots == 1);
static_assert(in_place_p::plan.storage[std::size_t(in_place_y)] == storage_kind::arena);
static_assert(in_place_p::plan.storage_ref[std::size_t(in_place_t)] == in_place_p::plan.storage_ref[std::size_t(in_place_y)]);

// not in place when the input is read again later
constexpr auto not_in_place = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {64, 32});
  tensor t = transpose(x);
  tensor y = exp(t);
  g.output("e", y);
  g.output("y", reduce_sum(y, 1) + reduce_sum(t, 1));
  return g;
};
using not_in_place_p = program<decltype(not_in_place)>;
static_assert(not_in_place_p::plan.storage_ref[std::size_t(first_node<not_in_place_p>(op::transpose))] !=
              not_in_place_p::plan.storage_ref[std::size_t(first_node<not_in_place_p>(op::exp))]);

// ---- schedule ----------------------------------------------------------------------------------------------

constexpr auto assign_after_readers = [] {
  graph g;
  tensor v = g.variable("v", f32, {4}, init::arange(1));
  tensor updated = assign(v, v * 2.0);           // declared before the readers below
  tensor old_sum = reduce_sum(v);                // reads the value from before the run
  tensor old_t = transpose(reshape(v, {2, 2}));  // so does this copy
  g.output("new", updated);
  g.output("old_sum", old_sum);
  g.output("old_t", old_t);
  return g;
};
using assign_p = program<decltype(assign_after_readers)>;
constexpr int assign_group = assign_p::plan.group_of[std::size_t(first_node<assign_p>(op::assign))];
constexpr int sum_group = assign_p::plan.group_of[std::size_t(first_node<assign_p>(op::reduce_sum))];
constexpr int t_group = assign_p::plan.group_of[std::size_t(first_node<assign_p>(op::transpose))];
static_assert(assign_p::plan.groups[std::size_t(assign_group)].kind == group_kind::assign);
static_assert(assign_group < sum_group && assign_group < t_group);  // groups are numbered by node order...
static_assert(position_of_group<assign_p>(assign_group) > position_of_group<assign_p>(sum_group));  // ...but the assign runs last
static_assert(position_of_group<assign_p>(assign_group) > position_of_group<assign_p>(t_group));

constexpr auto assigned_twice = [] {
  graph g;
  tensor v = g.variable("v", f32, {4});
  g.output("a", assign(v, 1.0));
  g.output("b", assign(v, 2.0));
  return g;
};
static_assert(!program<decltype(assigned_twice)>::plan.error.empty());

}  // namespace

// ---- runs of the planned graphs ----------------------------------------------------------------------------

TEST_CASE("plan.cse.values") {
  const std::vector<float> x{0, 1, -1, 0.5f};
  auto a = compile<cpu>(cse_twice);
  const auto y = a.run({{"x", view(x, {4})}}).get<float>("y");
  for (std::size_t i = 0; i < 4; ++i) CHECK(double(y.flat()[i]) == doctest::Approx(4 * std::exp(double(x[i]))).epsilon(1e-6));
  auto c = compile<cpu>(cse_constants);
  const std::vector<float> xs{1, 2, 3};
  const auto& out = c.run({{"x", view(xs, {3})}});
  kt::check_values<float>("y", out.get<float>("y"), {3}, {(1 + 1) * 1 - 1 + 2 * 1, (2 + 2) * 2 - 2 + 3 * 2, (3 + 3) * 3 - 4 + 4 * 3});
  kt::check_values<float>("z", out.get<float>("z"), {3}, {3, 6, 9});
}

TEST_CASE("plan.fusion.chain_values") {
  auto ex = compile<cpu>(fused_chain);
  const std::int64_t B = 3;
  const auto x = kt::uniform<float>(std::size_t(B) * 128, -3, 3, 1), w = kt::uniform<float>(16, -1, 1, 2), b = kt::uniform<float>(8, -1, 1, 3);
  const std::vector<float> c{0.5f};
  const auto& out = ex.run({{"x", view(x, {B, 8, 16})}, {"w", view(w, {16})}, {"b", view(b, {8, 1})}, {"c", view(c, {})}});
  std::vector<double> want;
  for (std::int64_t i = 0; i < B; ++i)
    for (std::size_t r = 0; r < 8; ++r)
      for (std::size_t k = 0; k < 16; ++k) {
        const double xv = x[std::size_t(i) * 128 + r * 16 + k];
        want.push_back(2 / (1 + std::exp(-(xv * w[k] + b[r]))) - std::exp(-std::fabs(xv)) / 1.5 + double(k));
      }
  kt::check_values<float>("y", out.get<float>("y"), {B, 8, 16}, want, 1e-5, 1e-5);
}

TEST_CASE("plan.buffers.chain_values") {
  auto ex = compile<cpu>(layout_chain);
  const auto x = kt::uniform<float>(256, -1, 1, 4);
  std::vector<double> cur = kt::as_double(x);
  std::int64_t rows = 16, cols = 16;
  for (int i = 0; i < 8; ++i) {
    const std::int64_t keep = 16 - i;  // slice rows [0, keep), then transpose
    std::vector<double> next;
    for (std::int64_t c = 0; c < cols; ++c)
      for (std::int64_t r = 0; r < keep; ++r) next.push_back(cur[std::size_t(r * cols + c)]);
    cur = next;
    rows = cols;
    cols = keep;
  }
  kt::check_values<float>("y", ex.run({{"x", view(x, {16, 16})}}).get<float>("y"), {rows, cols}, cur);

  auto mm = compile<cpu>(matmul_chain);
  const std::vector<double> xs{1, 2};  // batch 1, x = [1, 2, 0, ...]
  std::vector<double> xv(32, 0), w(32 * 32, 0);
  xv[0] = 1;
  xv[1] = 2;
  for (int i = 0; i < 32; ++i) w[std::size_t(i * 32 + (i + 1) % 32)] = 2;  // shift right and double
  std::vector<double> want(32, 0);
  want[6] = 64;  // after 6 products: x shifted by 6, times 2^6
  want[7] = 128;
  kt::check_values<double>("y", mm.run({{"x", view(xv, {1, 32})}, {"w", view(w, {32, 32})}}).get<double>("y"), {1, 32}, want);
  (void)xs;

  auto ip = compile<cpu>(in_place);
  const auto xi = kt::uniform<float>(64 * 32, -2, 2, 5);
  std::vector<double> yi;
  for (std::size_t c = 0; c < 32; ++c)
    for (std::size_t r = 0; r < 64; ++r) yi.push_back(std::exp(double(xi[r * 32 + c])) * 2 + 1);
  kt::check_values<float>("y", ip.run({{"x", view(xi, {64, 32})}}).get<float>("y"), {32, 64}, yi, 1e-6, 0);
}

TEST_CASE("plan.schedule.assign_reads_old_value") {
  auto ex = compile<cpu>(assign_after_readers);
  for (int run = 0; run < 3; ++run) {
    const double f = double(1 << run);  // v = f * [1, 2, 3, 4] before this run
    const auto& out = ex.run();
    kt::check_values<float>("old_sum", out.get<float>("old_sum"), {}, {10 * f});
    kt::check_values<float>("old_t", out.get<float>("old_t"), {2, 2}, {f, 3 * f, 2 * f, 4 * f});
    kt::check_values<float>("new", out.get<float>("new"), {4}, {2 * f, 4 * f, 6 * f, 8 * f});
  }
}

TEST_CASE("plan.describe_and_dot") {
  const std::string d = describe<dense_p>();
  INFO(d);
  CHECK(d.find("1 groups") != std::string::npos);
  CHECK(d.find("fused elementwise") != std::string::npos);
  CHECK(d.find("matmul %" + std::to_string(dense_p::plan.groups[0].anchor)) != std::string::npos);
  CHECK(d.find("relu") != std::string::npos);
  CHECK(d.find("1 arena buffers") != std::string::npos);
  CHECK(d.find("outputs: h=%") != std::string::npos);
  CHECK(d.find("1200 bytes x batch") != std::string::npos);  // 300 floats per row of the batch

  const std::string a = describe<assign_p>();
  INFO(a);
  CHECK(a.find("into variable 'v'") != std::string::npos);
  // the assign is the last entry of the schedule
  CHECK(a.find("[" + std::to_string(assign_p::plan.n_groups - 1) + "] assign") != std::string::npos);

  const std::string dot = to_dot<fused_chain_p>();
  INFO(dot);
  CHECK(dot.rfind("digraph kiln {", 0) == 0);
  CHECK(dot.find("subgraph cluster_0") != std::string::npos);
  CHECK(dot.find("subgraph cluster_1") == std::string::npos);  // one fusion group
  CHECK(dot.find("label=\"fused elementwise 0\"") != std::string::npos);
  CHECK(dot.find("sigmoid") != std::string::npos);
  CHECK(dot.find("style=dashed") != std::string::npos);  // inline immediates (scalars, iota)
  CHECK(dot.find("out_y") != std::string::npos);
  CHECK(dot.back() == '\n');

  const std::string dot2 = to_dot<layout_chain_p>();
  CHECK(dot2.find("subgraph cluster_14") != std::string::npos);
  CHECK(dot2.find("subgraph cluster_15") == std::string::npos);
  CHECK(dot2.find("label=\"layout 3\"") != std::string::npos);
  const std::string dot3 = to_dot<dense_p>();
  CHECK(dot3.find("n" + std::to_string(dense_p::plan.groups[0].anchor) + ";") != std::string::npos);  // the matmul sits in the cluster
}
