// Layout and indexing ops against plain loops: reshape/flatten/expand_dims, transpose, slice,
// concat, stack, one_hot and gather (batch_dims 0 and 1), and gather's run-time index check.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_util.hpp"

using namespace kiln;
using kt::check_values;

namespace {

std::vector<double> iota_values(std::size_t n, double start = 0) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + double(i);
  return v;
}

// out[i_0..] = in[j] where out dim k is in dim perm[k]
std::vector<double> permute(const std::vector<double>& in, const std::vector<std::int64_t>& d, const std::vector<int>& perm) {
  std::vector<std::int64_t> od;
  for (int p : perm) od.push_back(d[std::size_t(p)]);
  const auto si = kt::strides_of(d), so = kt::strides_of(od);
  std::vector<double> out(in.size());
  for (std::int64_t o = 0; o < kt::count_of(od); ++o) {
    std::int64_t rem = o, src = 0;
    for (std::size_t k = 0; k < od.size(); ++k) {
      const std::int64_t idx = rem / so[k];
      rem %= so[k];
      src += idx * si[std::size_t(perm[k])];
    }
    out[std::size_t(o)] = in[std::size_t(src)];
  }
  return out;
}

// in[..., begin:end, ...] along `axis`
std::vector<double> slice_ref(const std::vector<double>& in, const std::vector<std::int64_t>& d, int axis, std::int64_t begin, std::int64_t end) {
  const auto si = kt::strides_of(d);
  std::vector<double> out;
  for (std::int64_t i = 0; i < kt::count_of(d); ++i) {
    const std::int64_t idx = (i / si[std::size_t(axis)]) % d[std::size_t(axis)];
    if (idx >= begin && idx < end) out.push_back(in[std::size_t(i)]);
  }
  return out;
}

// ---- reshape, flatten, expand_dims ------------------------------------------------------------------

constexpr auto reshape_model = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {2, 3, 4});
  tensor y = g.placeholder("y", i64, {batch, 3, 4});
  g.output("r", reshape(x, {6, 4}));
  g.output("r_computed", reshape(x * 2.0, {4, 3, 2}) + 1.0);  // a view of a computed buffer, read by a loop
  g.output("flat", flatten(x));
  g.output("flat_dyn", flatten(y));
  g.output("col", expand_dims(reshape(x, {24}), -1));
  g.output("mid", expand_dims(x, 1));
  g.output("dyn_reshape", reshape(y, {batch, 12, 1}) * 3.0);
  return g;
};

}  // namespace

TEST_CASE("ops.layout.reshape_flatten_expand_dims") {
  const auto xs = iota_values(24, 1);
  const std::vector<float> x(xs.begin(), xs.end());
  auto ex = compile<cpu>(reshape_model);
  const std::int64_t B = 3;
  const auto yv = kt::integers<std::int64_t>(std::size_t(B) * 12, -100, 100, 5);
  const auto& out = ex.run({{"x", view(x, {2, 3, 4})}, {"y", view(yv, {B, 3, 4})}});
  check_values<float>("r", out.get<float>("r"), {6, 4}, xs);
  std::vector<double> rc;
  for (double v : xs) rc.push_back(v * 2 + 1);
  check_values<float>("r_computed", out.get<float>("r_computed"), {4, 3, 2}, rc);
  check_values<float>("flat", out.get<float>("flat"), {2, 12}, xs);
  check_values<std::int64_t>("flat_dyn", out.get<std::int64_t>("flat_dyn"), {B, 12}, kt::as_double(yv));
  check_values<float>("col", out.get<float>("col"), {24, 1}, xs);
  check_values<float>("mid", out.get<float>("mid"), {2, 1, 3, 4}, xs);
  std::vector<double> dr;
  for (auto v : yv) dr.push_back(double(v) * 3);
  check_values<std::int64_t>("dyn_reshape", out.get<std::int64_t>("dyn_reshape"), {B, 12, 1}, dr);
  // a reshape of a placeholder is a view of the fed buffer itself
  CHECK(out.get<float>("r").data() == x.data());
}

// ---- transpose ------------------------------------------------------------------------------------------

namespace {
constexpr auto transpose_model = [] {
  graph g;
  tensor m = g.placeholder("m", f32, {3, 5});
  tensor t = g.placeholder("t", f64, {2, 3, 4});
  tensor q = g.placeholder("q", i32, {2, 3, 4, 5});
  tensor d = g.placeholder("d", f32, {batch, 3, 4});
  g.output("m10", transpose(m));
  g.output("t021", transpose(t));
  g.output("t102", transpose(t, {1, 0, 2}));
  g.output("t210", transpose(t, {2, 1, 0}));
  g.output("t120", transpose(t, {1, 2, 0}));
  g.output("t201", transpose(t, {2, 0, 1}));
  g.output("q0231", transpose(q, {0, 2, 3, 1}));
  g.output("q3102", transpose(q, {3, 1, 0, 2}));
  g.output("q3210", transpose(q, {3, 2, 1, 0}));
  g.output("d021", transpose(d, {0, 2, 1}));
  g.output("twice", transpose(transpose(t, {1, 2, 0}), {2, 0, 1}));  // back to t
  return g;
};
}  // namespace

TEST_CASE("ops.layout.transpose") {
  const auto ms = iota_values(15), ts = iota_values(24, -7), qs = iota_values(120, 3);
  const std::vector<float> m(ms.begin(), ms.end());
  const std::vector<double> t = ts;
  const std::vector<std::int32_t> q(qs.begin(), qs.end());
  const std::int64_t B = 2;
  const auto ds = kt::as_double(kt::uniform<float>(std::size_t(B) * 12, -1, 1, 3));
  const std::vector<float> d(ds.begin(), ds.end());
  auto ex = compile<cpu>(transpose_model);
  const auto& out = ex.run({{"m", view(m, {3, 5})}, {"t", view(t, {2, 3, 4})}, {"q", view(q, {2, 3, 4, 5})}, {"d", view(d, {B, 3, 4})}});
  check_values<float>("m10", out.get<float>("m10"), {5, 3}, permute(ms, {3, 5}, {1, 0}));
  // by hand: m^T[1][2] = m[2][1] = 11
  CHECK(out.get<float>("m10").at({1, 2}) == 11.0f);
  check_values<double>("t021", out.get<double>("t021"), {2, 4, 3}, permute(ts, {2, 3, 4}, {0, 2, 1}));
  check_values<double>("t102", out.get<double>("t102"), {3, 2, 4}, permute(ts, {2, 3, 4}, {1, 0, 2}));
  check_values<double>("t210", out.get<double>("t210"), {4, 3, 2}, permute(ts, {2, 3, 4}, {2, 1, 0}));
  check_values<double>("t120", out.get<double>("t120"), {3, 4, 2}, permute(ts, {2, 3, 4}, {1, 2, 0}));
  check_values<double>("t201", out.get<double>("t201"), {4, 2, 3}, permute(ts, {2, 3, 4}, {2, 0, 1}));
  check_values<std::int32_t>("q0231", out.get<std::int32_t>("q0231"), {2, 4, 5, 3}, permute(qs, {2, 3, 4, 5}, {0, 2, 3, 1}));
  check_values<std::int32_t>("q3102", out.get<std::int32_t>("q3102"), {5, 3, 2, 4}, permute(qs, {2, 3, 4, 5}, {3, 1, 0, 2}));
  check_values<std::int32_t>("q3210", out.get<std::int32_t>("q3210"), {5, 4, 3, 2}, permute(qs, {2, 3, 4, 5}, {3, 2, 1, 0}));
  check_values<float>("d021", out.get<float>("d021"), {B, 4, 3}, permute(ds, {B, 3, 4}, {0, 2, 1}));
  check_values<double>("twice", out.get<double>("twice"), {2, 3, 4}, ts);
}

// ---- slice ----------------------------------------------------------------------------------------------

namespace {
constexpr auto slice_model = [] {
  graph g;
  tensor v = g.variable("v", i32, {10}, init::arange(0));
  tensor x = g.placeholder("x", f32, {4, 6});
  tensor t = g.placeholder("t", f32, {3, 5, 2});
  tensor d = g.placeholder("d", f32, {batch, 7});
  g.output("v2_5", slice(v, 0, 2, 5));          // b[2:5]
  g.output("v_neg", slice(v, 0, -4, -1));       // b[-4:-1]
  g.output("rows", slice(x, 0, 1, 3));
  g.output("cols_neg", slice(x, -1, -5, -2));   // x[:, -5:-2]
  g.output("mid", slice(t, 1, 1, 4));
  g.output("last", slice(t, 2, -1, 2));         // t[:, :, -1:]
  g.output("dyn", slice(d, 1, 2, 6) * 2.0);
  g.output("nested", slice(slice(x, 1, 1, 6), 1, 2, 4));
  return g;
};
}  // namespace

TEST_CASE("ops.layout.slice") {
  const auto xs = iota_values(24), ts = iota_values(30, 100);
  const std::vector<float> x(xs.begin(), xs.end()), t(ts.begin(), ts.end());
  const std::int64_t B = 3;
  const auto ds = iota_values(std::size_t(B) * 7, -10);
  const std::vector<float> d(ds.begin(), ds.end());
  auto ex = compile<cpu>(slice_model);
  const auto& out = ex.run({{"x", view(x, {4, 6})}, {"t", view(t, {3, 5, 2})}, {"d", view(d, {B, 7})}});
  check_values<std::int32_t>("v2_5", out.get<std::int32_t>("v2_5"), {3}, {2, 3, 4});
  check_values<std::int32_t>("v_neg", out.get<std::int32_t>("v_neg"), {3}, {6, 7, 8});
  check_values<float>("rows", out.get<float>("rows"), {2, 6}, slice_ref(xs, {4, 6}, 0, 1, 3));
  check_values<float>("cols_neg", out.get<float>("cols_neg"), {4, 3}, slice_ref(xs, {4, 6}, 1, 1, 4));
  CHECK(out.get<float>("cols_neg").at({0, 0}) == 1.0f);  // by hand: x[0, -5] = x[0, 1] = 1
  check_values<float>("mid", out.get<float>("mid"), {3, 3, 2}, slice_ref(ts, {3, 5, 2}, 1, 1, 4));
  check_values<float>("last", out.get<float>("last"), {3, 5, 1}, slice_ref(ts, {3, 5, 2}, 2, 1, 2));
  auto dy = slice_ref(ds, {B, 7}, 1, 2, 6);
  for (auto& v : dy) v *= 2;
  check_values<float>("dyn", out.get<float>("dyn"), {B, 4}, dy);
  check_values<float>("nested", out.get<float>("nested"), {4, 2}, slice_ref(xs, {4, 6}, 1, 3, 5));
}

// ---- concat and stack --------------------------------------------------------------------------------------

namespace {
constexpr auto concat_model = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 3});
  tensor b = g.placeholder("b", f32, {1, 3});
  tensor c = g.placeholder("c", f32, {2, 2});
  tensor i = g.placeholder("i", i32, {2, 3});
  tensor j = g.placeholder("j", i32, {2, 3});
  tensor d = g.placeholder("d", f64, {batch, 2});
  tensor e = g.placeholder("e", f64, {batch, 3});
  g.output("axis0", concat({a, b, a * 10.0}, 0));
  g.output("axis1", concat({a, c}, 1));
  g.output("axis_neg", concat({c, a, c}, -1));
  g.output("dyn", concat({d, e}, 1));
  g.output("stack0", stack({i, j}, 0));
  g.output("stack1", stack({i, j, i}, 1));
  g.output("stack_last", stack({i, j}, -1));
  g.output("stack_vec", stack({reshape(a, {6}), reshape(a, {6}) + 1.0}, 0));
  return g;
};
}  // namespace

TEST_CASE("ops.layout.concat_stack") {
  const std::vector<float> a{0, 1, 2, 3, 4, 5}, b{6, 7, 8}, c{-1, -2, -3, -4};
  const std::vector<std::int32_t> i{1, 2, 3, 4, 5, 6}, j{-1, -2, -3, -4, -5, -6};
  const std::int64_t B = 2;
  const std::vector<double> d{1, 2, 3, 4}, e{10, 20, 30, 40, 50, 60};
  auto ex = compile<cpu>(concat_model);
  const auto& out = ex.run({{"a", view(a, {2, 3})}, {"b", view(b, {1, 3})}, {"c", view(c, {2, 2})}, {"i", view(i, {2, 3})},
                            {"j", view(j, {2, 3})}, {"d", view(d, {B, 2})}, {"e", view(e, {B, 3})}});
  // all by hand
  check_values<float>("axis0", out.get<float>("axis0"), {5, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 20, 30, 40, 50});
  check_values<float>("axis1", out.get<float>("axis1"), {2, 5}, {0, 1, 2, -1, -2, 3, 4, 5, -3, -4});
  check_values<float>("axis_neg", out.get<float>("axis_neg"), {2, 7}, {-1, -2, 0, 1, 2, -1, -2, -3, -4, 3, 4, 5, -3, -4});
  check_values<double>("dyn", out.get<double>("dyn"), {B, 5}, {1, 2, 10, 20, 30, 3, 4, 40, 50, 60});
  check_values<std::int32_t>("stack0", out.get<std::int32_t>("stack0"), {2, 2, 3}, {1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6});
  check_values<std::int32_t>("stack1", out.get<std::int32_t>("stack1"), {2, 3, 3},
                             {1, 2, 3, -1, -2, -3, 1, 2, 3, 4, 5, 6, -4, -5, -6, 4, 5, 6});
  check_values<std::int32_t>("stack_last", out.get<std::int32_t>("stack_last"), {2, 3, 2}, {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6});
  check_values<float>("stack_vec", out.get<float>("stack_vec"), {2, 6}, {0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6});
}

// ---- one_hot -------------------------------------------------------------------------------------------------

namespace {
constexpr auto one_hot_model = [] {
  graph g;
  tensor k = g.placeholder("k", i32, {6});
  tensor a = g.placeholder("a", i64, {batch});
  g.output("plain", one_hot(k, 4));
  g.output("on_off", one_hot(k, 3, f64, 5, -1));
  g.output("dyn", one_hot(a, 5, i32));
  return g;
};
}  // namespace

TEST_CASE("ops.index.one_hot") {
  const std::vector<std::int32_t> k{0, 3, 1, -1, 4, 2};  // -1 and 4 are outside [0, 4): all off
  auto ex = compile<cpu>(one_hot_model);
  const std::vector<std::int64_t> a{4, 0, 2};
  const auto& out = ex.run({{"k", view(k, {6})}, {"a", view(a, {3})}});
  std::vector<double> plain, on_off, dyn;
  for (auto v : k)
    for (int j = 0; j < 4; ++j) plain.push_back(v == j ? 1 : 0);
  for (auto v : k)
    for (int j = 0; j < 3; ++j) on_off.push_back(v == j ? 5 : -1);
  for (auto v : a)
    for (int j = 0; j < 5; ++j) dyn.push_back(v == j ? 1 : 0);
  check_values<float>("plain", out.get<float>("plain"), {6, 4}, plain);
  check_values<double>("on_off", out.get<double>("on_off"), {6, 3}, on_off);
  check_values<std::int32_t>("dyn", out.get<std::int32_t>("dyn"), {3, 5}, dyn);
}

// ---- gather -------------------------------------------------------------------------------------------------

namespace {
constexpr auto gather_model = [] {
  graph g;
  tensor p = g.placeholder("p", f32, {5, 3});
  tensor idx = g.placeholder("idx", i32, {4});
  tensor idxc = g.placeholder("idxc", i32, {4});
  tensor p3 = g.placeholder("p3", f64, {2, 5, 3});
  tensor idx2 = g.placeholder("idx2", i64, {2, 2});
  tensor q = g.placeholder("q", f32, {batch, 4});
  tensor actions = g.placeholder("actions", i32, {batch});
  tensor r = g.placeholder("r", f32, {batch, 4, 3});
  tensor ridx = g.placeholder("ridx", i64, {batch, 2});
  g.output("rows", gather(p, idx));                  // [4,3]
  g.output("cols", gather(p, idxc, 1));              // [5,4]
  g.output("mid", gather(p3, idx2, 1));              // [2,2,2,3]
  g.output("qsa", gather(q, actions, 1, 1));         // Q(s, a): [?]
  g.output("per_row", gather(r, ridx, 1, 1));        // [?,2,3]
  g.output("td", gather(q, actions, 1, 1) - reduce_max(q, 1));
  g.output("double_q", gather(q * 2.0, argmax(r, 1), 1, 1));   // computed params and indices: [?,3]
  return g;
};
}  // namespace

TEST_CASE("ops.index.gather") {
  const auto ps = iota_values(15), p3s = iota_values(30, 0.5);
  const std::vector<float> p(ps.begin(), ps.end());
  const std::vector<double> p3 = p3s;
  const std::vector<std::int32_t> idx{4, 0, 0, 2}, idxc{2, 0, 1, 2};
  const std::vector<std::int64_t> idx2{1, 4, 0, 3};
  const std::int64_t B = 3;
  const std::vector<float> q{1, 5, 2, 0, -1, -2, -3, -4, 9, 8, 7, 6};
  const std::vector<std::int32_t> actions{1, 3, 0};
  const auto rs = iota_values(std::size_t(B) * 12, 100);
  const std::vector<float> r(rs.begin(), rs.end());
  const std::vector<std::int64_t> ridx{3, 0, 1, 1, 2, 3};
  auto ex = compile<cpu>(gather_model);
  const auto& out = ex.run({{"p", view(p, {5, 3})}, {"idx", view(idx, {4})}, {"idxc", view(idxc, {4})}, {"p3", view(p3, {2, 5, 3})}, {"idx2", view(idx2, {2, 2})},
                            {"q", view(q, {B, 4})}, {"actions", view(actions, {B})}, {"r", view(r, {B, 4, 3})}, {"ridx", view(ridx, {B, 2})}});
  std::vector<double> rows, cols, mid, per_row;
  for (auto i : idx)
    for (int c = 0; c < 3; ++c) rows.push_back(ps[std::size_t(i * 3 + c)]);
  for (int rr = 0; rr < 5; ++rr)
    for (auto i : idxc) cols.push_back(ps[std::size_t(rr * 3 + i)]);
  for (int a = 0; a < 2; ++a)
    for (auto i : idx2)
      for (int c = 0; c < 3; ++c) mid.push_back(p3s[std::size_t(a * 15 + i * 3 + c)]);
  for (std::int64_t b = 0; b < B; ++b)
    for (int j = 0; j < 2; ++j)
      for (int c = 0; c < 3; ++c) per_row.push_back(rs[std::size_t(b * 12 + ridx[std::size_t(b * 2 + j)] * 3 + c)]);
  check_values<float>("rows", out.get<float>("rows"), {4, 3}, rows);
  check_values<float>("cols", out.get<float>("cols"), {5, 4}, cols);
  check_values<double>("mid", out.get<double>("mid"), {2, 2, 2, 3}, mid);
  check_values<float>("qsa", out.get<float>("qsa"), {B}, {5, -4, 9});  // by hand
  check_values<float>("per_row", out.get<float>("per_row"), {B, 2, 3}, per_row);
  check_values<float>("td", out.get<float>("td"), {B}, {0, -3, 0});
  // r increases along every axis, so argmax(r, 1) is 3 everywhere: q[b, 3] * 2 three times
  check_values<float>("double_q", out.get<float>("double_q"), {B, 3}, {0, 0, 0, -8, -8, -8, 12, 12, 12});
}

TEST_CASE("ops.index.gather.out_of_range_throws") {
  static constexpr auto model = [] {
    graph g;
    tensor q = g.placeholder("q", f32, {batch, 4});
    tensor actions = g.placeholder("actions", i32, {batch});
    g.output("qsa", gather(q, actions, 1, 1));
    return g;
  };
  const std::vector<float> q(8, 1.0f);
  auto ex = compile<cpu>(model);
  const std::vector<std::int32_t> bad{1, 7}, negative{-1, 0}, good{3, 0};
  CHECK_THROWS_WITH_AS(ex.run({{"q", view(q, {2, 4})}, {"actions", view(bad, {2})}}),
                       doctest::Contains("index 7 is out of range [0, 4)"), kiln::error);
  CHECK_THROWS_WITH_AS(ex.run({{"q", view(q, {2, 4})}, {"actions", view(bad, {2})}}), doctest::Contains("'q'"), kiln::error);
  CHECK_THROWS_WITH_AS(ex.run({{"q", view(q, {2, 4})}, {"actions", view(negative, {2})}}),
                       doctest::Contains("index -1 is out of range"), kiln::error);
  // the executor is still usable afterwards
  check_values<float>("qsa", ex.run({{"q", view(q, {2, 4})}, {"actions", view(good, {2})}}).get<float>("qsa"), {2}, {1, 1});
}
