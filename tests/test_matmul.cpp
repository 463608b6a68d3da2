// Matrix products against triple loops in double: 2-D with every transpose combination,
// batched and shared-weight 3-D products, the dynamic batch dim, the small register-blocked
// kernel, the cache-blocked kernel (Eigen for f64), and relu(x W + b) with the epilogue fused into the product.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <algorithm>
#include "test_util.hpp"

using namespace kiln;

namespace {

// C[b] = op(A[b]) op(B[b or 0]); A is [M,K] (or [K,M] when ta), B is [K,N] (or [N,K] when tb).
struct mm_ref {
  std::vector<double> want, bound;
};
mm_ref matmul_ref(const std::vector<double>& a, const std::vector<double>& b, std::int64_t batches, bool b_batched, std::int64_t M,
                  std::int64_t K, std::int64_t N, bool ta, bool tb, double eps) {
  mm_ref r;
  for (std::int64_t bi = 0; bi < batches; ++bi)
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t n = 0; n < N; ++n) {
        double acc = 0, mag = 0;
        for (std::int64_t k = 0; k < K; ++k) {
          const double x = a[std::size_t(bi * M * K + (ta ? k * M + m : m * K + k))];
          const double y = b[std::size_t((b_batched ? bi * K * N : 0) + (tb ? n * K + k : k * N + n))];
          acc += x * y;
          mag += std::fabs(x * y);
        }
        r.want.push_back(acc);
        r.bound.push_back(eps * (mag + 1));
      }
  return r;
}

template <dtype T, std::int64_t M, std::int64_t K, std::int64_t N, bool TA, bool TB> struct mm2_model {
  constexpr graph operator()() const {
    graph g;
    tensor a = g.placeholder("a", T, TA ? shape{K, M} : shape{M, K});
    tensor b = g.placeholder("b", T, TB ? shape{N, K} : shape{K, N});
    g.output("c", matmul(a, b, TA, TB));
    return g;
  }
};

template <dtype T, std::int64_t M, std::int64_t K, std::int64_t N, bool TA, bool TB> void check_mm2(double eps) {
  using C = ctype<T>;
  CAPTURE(M);
  CAPTURE(K);
  CAPTURE(N);
  CAPTURE(TA);
  CAPTURE(TB);
  const auto a = kt::uniform<C>(std::size_t(M * K), -1, 1, 100 + std::uint64_t(M + K)),
             b = kt::uniform<C>(std::size_t(K * N), -1, 1, 200 + std::uint64_t(K + N));
  auto ex = compile<cpu>(mm2_model<T, M, K, N, TA, TB>{});
  const auto& out = ex.run({{"a", view(a, TA ? dims{K, M} : dims{M, K})}, {"b", view(b, TB ? dims{N, K} : dims{K, N})}});
  const auto r = matmul_ref(kt::as_double(a), kt::as_double(b), 1, false, M, K, N, TA, TB, eps);
  kt::check_bounded<C>("c", out.template get<C>("c"), {M, N}, r.want, r.bound);
}

}  // namespace

TEST_CASE("ops.matmul.2d.transposes.f32") {
  check_mm2<f32, 5, 7, 9, false, false>(1e-6);
  check_mm2<f32, 5, 7, 9, false, true>(1e-6);
  check_mm2<f32, 5, 7, 9, true, false>(1e-6);
  check_mm2<f32, 5, 7, 9, true, true>(1e-6);
}

TEST_CASE("ops.matmul.2d.transposes.f64") {
  check_mm2<f64, 6, 3, 4, false, false>(1e-14);
  check_mm2<f64, 6, 3, 4, false, true>(1e-14);
  check_mm2<f64, 6, 3, 4, true, false>(1e-14);
  check_mm2<f64, 6, 3, 4, true, true>(1e-14);
}

TEST_CASE("ops.matmul.2d.hand_values") {
  // [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]]
  static constexpr auto model = [] {
    graph g;
    tensor a = g.placeholder("a", f32, {2, 2});
    tensor b = g.placeholder("b", f32, {2, 2});
    g.output("ab", matmul(a, b));
    g.output("atb", matmul(a, b, true, false));
    return g;
  };
  const std::vector<float> a{1, 2, 3, 4}, b{5, 6, 7, 8};
  auto ex = compile<cpu>(model);
  const auto& out = ex.run({{"a", view(a, {2, 2})}, {"b", view(b, {2, 2})}});
  kt::check_values<float>("ab", out.get<float>("ab"), {2, 2}, {19, 22, 43, 50});
  kt::check_values<float>("atb", out.get<float>("atb"), {2, 2}, {26, 30, 38, 44});  // [[1,3],[2,4]] x b
}

TEST_CASE("ops.matmul.small_kernel") {
  check_mm2<f32, 3, 4, 128, false, false>(1e-6);   // K*N = 512, N a multiple of the SIMD width
  check_mm2<f32, 70, 4, 13, false, false>(1e-6);   // SIMD body plus scalar tail columns, 2 row blocks
  check_mm2<f32, 2, 1, 3, false, false>(1e-6);     // N below the SIMD width
  check_mm2<f32, 2, 128, 256, false, false>(1e-6); // K*N = 32768, the largest small product
}

// The cache-blocked f32 kernel (backends/cpu/gemm.hpp): K in several blocks of equal depth, a
// partial last panel of columns, row tiles with a shorter last tile, row blocks on several
// threads, a transposed b transposed once (K*N <= 32768); a larger transposed b and f64 go to Eigen.
TEST_CASE("ops.matmul.blocked_kernel") {
  check_mm2<f32, 3, 784, 300, false, false>(1e-6);     // 4 K blocks of 196, a partial panel, 3 rows
  check_mm2<f32, 130, 64, 600, false, false>(1e-6);    // K*N = 38400: 3 row blocks
  check_mm2<f32, 67, 50, 40, true, true>(1e-6);        // both transposed, b transposed once
  check_mm2<f32, 100, 300, 784, false, true>(1e-6);    // b^T of 235,200: Eigen
  check_mm2<f32, 61, 513, 97, true, false>(1e-6);      // a^T, 3 K blocks of 171
  check_mm2<f32, 29, 260, 150, true, true>(1e-6);      // both transposed, K*N = 39000: Eigen
  check_mm2<f32, 200, 300, 64, false, true>(1e-6);     // a conv layer's input gradient: dy W^T, W^T once
  check_mm2<f64, 65, 300, 120, false, false>(1e-14);
}

namespace {
constexpr auto batched_model = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 5, 7});
  tensor b = g.placeholder("b", f32, {2, 7, 3});
  tensor w = g.placeholder("w", f32, {7, 3});
  tensor bt = g.placeholder("bt", f32, {2, 3, 7});
  tensor big_a = g.placeholder("big_a", f64, {3, 70, 300});
  tensor big_w = g.placeholder("big_w", f64, {300, 200});
  tensor dyn = g.placeholder("dyn", f32, {batch, 4, 7});
  g.output("batched", matmul(a, b));
  g.output("shared", matmul(a, w));
  g.output("batched_tb", matmul(a, bt, false, true));
  g.output("shared_big", matmul(big_a, big_w));
  g.output("dyn_shared", matmul(dyn, w));
  return g;
};
}  // namespace

TEST_CASE("ops.matmul.batched_and_shared") {
  const auto a = kt::uniform<float>(70, -1, 1, 1), b = kt::uniform<float>(42, -1, 1, 2), w = kt::uniform<float>(21, -1, 1, 3),
             bt = kt::uniform<float>(42, -1, 1, 4);
  const auto big_a = kt::uniform<double>(3 * 70 * 300, -1, 1, 5), big_w = kt::uniform<double>(300 * 200, -1, 1, 6);
  auto ex = compile<cpu>(batched_model);
  for (std::int64_t B : {1, 4}) {
    CAPTURE(B);
    const auto dyn = kt::uniform<float>(std::size_t(B) * 28, -1, 1, 7 + std::uint64_t(B));
    const auto& out = ex.run({{"a", view(a, {2, 5, 7})}, {"b", view(b, {2, 7, 3})}, {"w", view(w, {7, 3})}, {"bt", view(bt, {2, 3, 7})},
                              {"big_a", view(big_a, {3, 70, 300})}, {"big_w", view(big_w, {300, 200})}, {"dyn", view(dyn, {B, 4, 7})}});
    auto r = matmul_ref(kt::as_double(a), kt::as_double(b), 2, true, 5, 7, 3, false, false, 1e-6);
    kt::check_bounded<float>("batched", out.get<float>("batched"), {2, 5, 3}, r.want, r.bound);
    r = matmul_ref(kt::as_double(a), kt::as_double(w), 2, false, 5, 7, 3, false, false, 1e-6);
    kt::check_bounded<float>("shared", out.get<float>("shared"), {2, 5, 3}, r.want, r.bound);
    r = matmul_ref(kt::as_double(a), kt::as_double(bt), 2, true, 5, 7, 3, false, true, 1e-6);
    kt::check_bounded<float>("batched_tb", out.get<float>("batched_tb"), {2, 5, 3}, r.want, r.bound);
    r = matmul_ref(big_a, big_w, 3, false, 70, 300, 200, false, false, 1e-14);
    kt::check_bounded<double>("shared_big", out.get<double>("shared_big"), {3, 70, 200}, r.want, r.bound);
    r = matmul_ref(kt::as_double(dyn), kt::as_double(w), B, false, 4, 7, 3, false, false, 1e-6);
    kt::check_bounded<float>("dyn_shared", out.get<float>("dyn_shared"), {B, 4, 3}, r.want, r.bound);
  }
}

// ---- dense layers: dynamic batch, epilogue fusion -----------------------------------------------------

namespace {
constexpr auto dense_model = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 784});
  tensor w = g.placeholder("w", f32, {784, 300});
  tensor b = g.placeholder("b", f32, {300});
  tensor s = g.placeholder("s", f32, {batch, 4});
  tensor sw = g.placeholder("sw", f32, {4, 128});
  tensor sb = g.placeholder("sb", f32, {128});
  tensor s2 = g.placeholder("s2", f32, {batch, 4});
  g.output("hidden", relu(matmul(x, w) + b));          // Eigen path with a fused epilogue
  g.output("small", relu(matmul(s, sw) + sb));         // small kernel with a fused epilogue
  g.output("plain", matmul(s2, sw));                     // small kernel, dynamic batch, no epilogue
  g.output("tanh_scaled", tanh(matmul(s2, sw) * 0.5));  // the same product (CSE), read by a plain loop
  return g;
};
}  // namespace

TEST_CASE("ops.matmul.dense.epilogue_dynamic_batch") {
  const auto w = kt::uniform<float>(784 * 300, -0.1, 0.1, 11), b = kt::uniform<float>(300, -0.5, 0.5, 12);
  const auto sw = kt::uniform<float>(4 * 128, -1, 1, 13), sb = kt::uniform<float>(128, -1, 1, 14);
  auto ex = compile<cpu>(dense_model);
  for (std::int64_t B : {5, 1, 70}) {
    CAPTURE(B);
    const auto x = kt::uniform<float>(std::size_t(B) * 784, 0, 1, 20 + std::uint64_t(B)), s = kt::uniform<float>(std::size_t(B) * 4, -1, 1, 40 + std::uint64_t(B));
    const auto& out = ex.run({{"x", view(x, {B, 784})}, {"w", view(w, {784, 300})}, {"b", view(b, {300})}, {"s", view(s, {B, 4})},
                              {"sw", view(sw, {4, 128})}, {"sb", view(sb, {128})}, {"s2", view(s, {B, 4})}});
    auto r = matmul_ref(kt::as_double(x), kt::as_double(w), 1, false, B, 784, 300, false, false, 1e-6);
    for (std::size_t i = 0; i < r.want.size(); ++i) r.want[i] = std::max(0.0, r.want[i] + b[i % 300]);
    kt::check_bounded<float>("hidden", out.get<float>("hidden"), {B, 300}, r.want, r.bound);
    auto p = matmul_ref(kt::as_double(s), kt::as_double(sw), 1, false, B, 4, 128, false, false, 1e-6);
    kt::check_bounded<float>("plain", out.get<float>("plain"), {B, 128}, p.want, p.bound);
    auto q = p;
    for (std::size_t i = 0; i < q.want.size(); ++i) q.want[i] = std::max(0.0, q.want[i] + sb[i % 128]);
    kt::check_bounded<float>("small", out.get<float>("small"), {B, 128}, q.want, q.bound);
    for (std::size_t i = 0; i < p.want.size(); ++i) p.want[i] = std::tanh(p.want[i] * 0.5);
    kt::check_bounded<float>("tanh_scaled", out.get<float>("tanh_scaled"), {B, 128}, p.want, p.bound);
  }
}

// ---- epilogues on every product shape ----------------------------------------------------------------

namespace {
constexpr auto epilogue_model = [] {
  graph g;
  tensor a = g.placeholder("a", f32, {2, 5, 7});
  tensor b = g.placeholder("b", f32, {2, 7, 3});
  tensor w = g.placeholder("w", f32, {7, 3});
  tensor bias = g.placeholder("bias", f32, {3});
  tensor d = g.placeholder("d", f32, {batch, 4, 7});
  tensor ta = g.placeholder("ta", f32, {80, 67});   // used transposed: [67,80]
  tensor tb = g.placeholder("tb", f32, {50, 80});   // used transposed: [80,50]
  tensor flat = g.placeholder("flat", f32, {batch, 2, 14});
  g.output("batched", relu(matmul(a, b) + bias));
  g.output("shared", sigmoid(matmul(a, w) - bias) * 2.0);
  g.output("dyn", relu(matmul(d, w) + bias));
  g.output("transposed", maximum(matmul(ta, tb, true, true) * 0.5, -0.25));
  g.output("reshaped", relu(matmul(reshape(flat, {batch, 4, 7}), w)));  // the input is a view
  return g;
};
}  // namespace

TEST_CASE("ops.matmul.epilogue.shapes") {
  using P = program<decltype(epilogue_model)>;
  static_assert(P::plan.count_groups(group_kind::matmul) == 0);  // every product is an anchor
  const auto a = kt::uniform<float>(70, -1, 1, 51), b = kt::uniform<float>(42, -1, 1, 52), w = kt::uniform<float>(21, -1, 1, 53),
             bias = kt::uniform<float>(3, -1, 1, 54), ta = kt::uniform<float>(80 * 67, -1, 1, 55), tb = kt::uniform<float>(50 * 80, -1, 1, 56);
  auto ex = compile<cpu>(epilogue_model);
  for (std::int64_t B : {3, 1}) {
    CAPTURE(B);
    const auto d = kt::uniform<float>(std::size_t(B) * 28, -1, 1, 57 + std::uint64_t(B));
    const auto& out = ex.run({{"a", view(a, {2, 5, 7})}, {"b", view(b, {2, 7, 3})}, {"w", view(w, {7, 3})}, {"bias", view(bias, {3})},
                              {"d", view(d, {B, 4, 7})}, {"ta", view(ta, {80, 67})}, {"tb", view(tb, {50, 80})}, {"flat", view(d, {B, 2, 14})}});
    auto r = matmul_ref(kt::as_double(a), kt::as_double(b), 2, true, 5, 7, 3, false, false, 1e-6);
    for (std::size_t i = 0; i < r.want.size(); ++i) r.want[i] = std::max(0.0, r.want[i] + bias[i % 3]);
    kt::check_bounded<float>("batched", out.get<float>("batched"), {2, 5, 3}, r.want, r.bound);
    r = matmul_ref(kt::as_double(a), kt::as_double(w), 2, false, 5, 7, 3, false, false, 1e-6);
    for (std::size_t i = 0; i < r.want.size(); ++i) r.want[i] = 2 / (1 + std::exp(-(r.want[i] - bias[i % 3])));
    kt::check_bounded<float>("shared", out.get<float>("shared"), {2, 5, 3}, r.want, r.bound);
    r = matmul_ref(kt::as_double(d), kt::as_double(w), B, false, 4, 7, 3, false, false, 1e-6);
    auto plain = r;
    for (std::size_t i = 0; i < r.want.size(); ++i) r.want[i] = std::max(0.0, r.want[i] + bias[i % 3]);
    kt::check_bounded<float>("dyn", out.get<float>("dyn"), {B, 4, 3}, r.want, r.bound);
    for (auto& v : plain.want) v = std::max(0.0, v);
    kt::check_bounded<float>("reshaped", out.get<float>("reshaped"), {B, 4, 3}, plain.want, plain.bound);
    r = matmul_ref(kt::as_double(ta), kt::as_double(tb), 1, false, 67, 80, 50, true, true, 1e-6);
    for (auto& v : r.want) v = std::max(v * 0.5, -0.25);
    kt::check_bounded<float>("transposed", out.get<float>("transposed"), {67, 50}, r.want, r.bound);
  }
}

// x^T g with x [?,M], g [?,N]: the contraction runs over the dynamic batch dim (a layer's weight
// gradient). Both orientations of the packet kernel (N >= M and N < M), large batches, an empty
// batch, and an epilogue fused onto the product.
namespace {
template <dtype T, std::int64_t M, std::int64_t N> struct batch_contraction_model {
  constexpr graph operator()() const {
    graph g;
    tensor x = g.placeholder("x", T, {batch, M});
    tensor d = g.placeholder("d", T, {batch, N});
    tensor bias = g.placeholder("bias", T, {N});
    g.output("c", matmul(x, d, true, false));
    g.output("c_epilogue", tanh(matmul(x, d, true, false) * 0.5 + bias));
    return g;
  }
};
template <dtype T, std::int64_t M, std::int64_t N> void check_batch_contraction(std::int64_t B, double eps) {
  using C = ctype<T>;
  CAPTURE(M);
  CAPTURE(N);
  CAPTURE(B);
  const auto x = kt::uniform<C>(std::size_t(B * M), -1, 1, 300 + std::uint64_t(B)), d = kt::uniform<C>(std::size_t(B * N), -1, 1, 400);
  const auto bias = kt::uniform<C>(std::size_t(N), -1, 1, 500);
  static auto ex = compile<cpu>(batch_contraction_model<T, M, N>{});
  const auto& out = ex.run({{"x", view(x, {B, M})}, {"d", view(d, {B, N})}, {"bias", view(bias, {N})}});
  const auto r = matmul_ref(kt::as_double(x), kt::as_double(d), 1, false, M, B, N, true, false, eps);
  kt::check_bounded<C>("c", out.template get<C>("c"), {M, N}, r.want, r.bound);
  std::vector<double> want(r.want.size()), bound(r.want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    want[i] = std::tanh(r.want[i] * 0.5 + double(bias[i % std::size_t(N)]));
    bound[i] = r.bound[i] + eps * 4;
  }
  kt::check_bounded<C>("c_epilogue", out.template get<C>("c_epilogue"), {M, N}, want, bound);
}
}  // namespace

TEST_CASE("ops.matmul.batch_contraction") {
  for (std::int64_t B : {1, 3, 32, 0}) {
    check_batch_contraction<f32, 4, 128>(B, 1e-6);   // N >= M: rows of c accumulate directly
    check_batch_contraction<f32, 128, 2>(B, 1e-6);   // N < M: accumulated transposed
    check_batch_contraction<f64, 5, 3>(B, 1e-15);
  }
  check_batch_contraction<f32, 128, 2>(1000, 1e-6);  // the packet kernel up to batch * M * N = 2^18
  check_batch_contraction<f32, 4, 128>(1000, 1e-6);   // and at any batch for M up to a row block
  check_batch_contraction<f64, 70, 90>(300, 1e-15);
}

// Products that the small kernels take: heads narrower than a SIMD packet (packet dot products
// along K, K not a multiple of the packet width), a transposed small B (packed), and one row or
// column of B (not packed).
TEST_CASE("ops.matmul.narrow_and_transposed_small") {
  check_mm2<f32, 32, 128, 2, false, false>(1e-6);  // a logits head
  check_mm2<f32, 33, 128, 1, false, false>(1e-6);  // a value head
  check_mm2<f32, 5, 37, 3, false, false>(1e-6);    // K = 2 packets + 5
  check_mm2<f32, 7, 100, 15, false, false>(1e-6);  // widest narrow head, K = 6 packets + 4
  check_mm2<f32, 3, 17, 7, false, false>(1e-6);    // K = 1 packet + 1
  check_mm2<f32, 4, 16, 5, false, false>(1e-6);    // K exactly one packet
  check_mm2<f32, 2, 5000, 2, false, false>(1e-6);  // K * N too large to pack: the small kernel
  check_mm2<f32, 5, 37, 3, false, true>(1e-6);     // transposed narrow: B's rows already are its columns
  check_mm2<f32, 3, 300, 1, false, true>(1e-6);
  check_mm2<f32, 2, 5000, 3, false, true>(1e-6);   // any K when transposed
  check_mm2<f32, 5, 2, 128, false, true>(1e-6);    // dh = dlogits W^T: B^T packed
  check_mm2<f32, 70, 3, 40, false, true>(1e-6);    // 2 row blocks, a masked last packet
  check_mm2<f32, 4, 1, 128, false, true>(1e-6);    // K = 1: B^T is B
  check_mm2<f32, 3, 64, 64, false, true>(1e-6);    // K * N = 4096, the largest packed
  check_mm2<f32, 3, 65, 64, false, true>(1e-6);    // Eigen
  check_mm2<f32, 6, 9, 20, false, false>(1e-6);    // one full and one masked packet of columns
}

namespace {
// The A2C network's products with their epilogues: hidden relu layer, logits and value heads,
// and the backward dh = where(h > 0, dlogits W2^T + dvalue W3^T, 0), at any batch size.
constexpr auto heads_model = [] {
  graph g;
  tensor x = g.placeholder("x", f32, {batch, 4});
  tensor w1 = g.placeholder("w1", f32, {4, 128});
  tensor b1 = g.placeholder("b1", f32, {128});
  tensor w2 = g.placeholder("w2", f32, {128, 2});
  tensor b2 = g.placeholder("b2", f32, {2});
  tensor w3 = g.placeholder("w3", f32, {128, 1});
  tensor dl = g.placeholder("dl", f32, {batch, 2});
  tensor dv = g.placeholder("dv", f32, {batch, 1});
  tensor h = relu(matmul(x, w1) + b1);
  g.output("h", h);
  g.output("logits", matmul(h, w2) + b2);
  g.output("value", matmul(h, w3) * 2.0);
  g.output("dh", where(h > 0.0, matmul(dl, w2, false, true) + matmul(dv, w3, false, true), 0.0));
  return g;
};
}  // namespace

TEST_CASE("ops.matmul.heads_and_backward_epilogues") {
  const auto w1 = kt::uniform<float>(4 * 128, -1, 1, 61), b1 = kt::uniform<float>(128, -0.5, 0.5, 62),
             w2 = kt::uniform<float>(256, -1, 1, 63), b2 = kt::uniform<float>(2, -1, 1, 64), w3 = kt::uniform<float>(128, -1, 1, 65);
  auto ex = compile<cpu>(heads_model);
  for (std::int64_t B : {32, 0, 1, 3, 70}) {
    CAPTURE(B);
    const std::size_t b = std::size_t(B);
    const auto x = kt::uniform<float>(b * 4, -1, 1, 66 + b), dl = kt::uniform<float>(b * 2, -1, 1, 67 + b), dv = kt::uniform<float>(b, -1, 1, 68 + b);
    const auto& out = ex.run({{"x", view(x, {B, 4})}, {"w1", view(w1, {4, 128})}, {"b1", view(b1, {128})}, {"w2", view(w2, {128, 2})},
                              {"b2", view(b2, {2})}, {"w3", view(w3, {128, 1})}, {"dl", view(dl, {B, 2})}, {"dv", view(dv, {B, 1})}});
    // the heads read kiln's h (checked first), so that a relu kink cannot amplify rounding
    auto hr = matmul_ref(kt::as_double(x), kt::as_double(w1), 1, false, B, 4, 128, false, false, 1e-6);
    for (std::size_t i = 0; i < hr.want.size(); ++i) hr.want[i] = std::max(0.0, hr.want[i] + b1[i % 128]);
    kt::check_bounded<float>("h", out.get<float>("h"), {B, 128}, hr.want, hr.bound);
    const auto hv = out.get<float>("h");
    const std::vector<double> h(hv.flat().begin(), hv.flat().end());
    auto lr = matmul_ref(h, kt::as_double(w2), 1, false, B, 128, 2, false, false, 1e-6);
    for (std::size_t i = 0; i < lr.want.size(); ++i) lr.want[i] += b2[i % 2];
    kt::check_bounded<float>("logits", out.get<float>("logits"), {B, 2}, lr.want, lr.bound);
    auto vr = matmul_ref(h, kt::as_double(w3), 1, false, B, 128, 1, false, false, 2e-6);
    for (auto& v : vr.want) v *= 2;
    kt::check_bounded<float>("value", out.get<float>("value"), {B, 1}, vr.want, vr.bound);
    auto d2 = matmul_ref(kt::as_double(dl), kt::as_double(w2), 1, false, B, 2, 128, false, true, 1e-6);
    const auto d3 = matmul_ref(kt::as_double(dv), kt::as_double(w3), 1, false, B, 1, 128, false, true, 1e-6);
    for (std::size_t i = 0; i < d2.want.size(); ++i) {
      d2.want[i] = h[i] > 0 ? d2.want[i] + d3.want[i] : 0.0;
      d2.bound[i] += d3.bound[i];
    }
    kt::check_bounded<float>("dh", out.get<float>("dh"), {B, 128}, d2.want, d2.bound);
  }
}

namespace {
// Epilogues that the small kernel runs from its registers: N with a masked last packet, leaves of
// every stride (a broadcast row, a full [?,N] buffer, a per-row column) around a comparison of
// the product and where(), a batched 3-D product, and an epilogue without SIMD math (pow), which
// runs over the stored product instead. Each product has its own input: a shared one would be
// computed once and stored for all its readers.
constexpr auto register_epilogue_model = [] {
  graph g;
  tensor x1 = g.placeholder("x1", f32, {batch, 6});
  tensor x2 = g.placeholder("x2", f32, {batch, 6});
  tensor x3 = g.placeholder("x3", f32, {batch, 6});
  tensor w = g.placeholder("w", f32, {6, 40});
  tensor bias = g.placeholder("bias", f32, {40});
  tensor full = g.placeholder("full", f32, {batch, 40});
  tensor col = g.placeholder("col", f32, {batch, 1});
  tensor a3 = g.placeholder("a3", f32, {3, 5, 6});
  g.output("masked", tanh(matmul(x1, w) * 0.5 + bias));
  g.output("leaves", where(matmul(x2, w) > full, full - col, full * bias));
  g.output("batched", maximum(matmul(a3, w) + bias, -0.25));
  g.output("scalar_epilogue", pow(abs(matmul(x3, w)) + 1.0, 1.5));
  return g;
};
}  // namespace

TEST_CASE("ops.matmul.epilogue.from_registers") {
  using P = program<decltype(register_epilogue_model)>;
  static_assert(P::plan.count_groups(group_kind::matmul) == 0);  // every product is an anchor
  const auto w = kt::uniform<float>(240, -1, 1, 71), bias = kt::uniform<float>(40, -1, 1, 72), a3 = kt::uniform<float>(90, -1, 1, 73);
  auto ex = compile<cpu>(register_epilogue_model);
  for (std::int64_t B : {3, 0, 1, 70}) {
    CAPTURE(B);
    const std::size_t b = std::size_t(B);
    const auto x1 = kt::uniform<float>(b * 6, -1, 1, 74 + b), x2 = kt::uniform<float>(b * 6, -1, 1, 75 + b),
               x3 = kt::uniform<float>(b * 6, -1, 1, 76 + b), full = kt::uniform<float>(b * 40, -1, 1, 77 + b),
               col = kt::uniform<float>(b, -1, 1, 78 + b);
    const auto& out = ex.run({{"x1", view(x1, {B, 6})}, {"x2", view(x2, {B, 6})}, {"x3", view(x3, {B, 6})}, {"w", view(w, {6, 40})},
                              {"bias", view(bias, {40})}, {"full", view(full, {B, 40})}, {"col", view(col, {B, 1})},
                              {"a3", view(a3, {3, 5, 6})}});
    const auto r1 = matmul_ref(kt::as_double(x1), kt::as_double(w), 1, false, B, 6, 40, false, false, 1e-6);
    const auto r2 = matmul_ref(kt::as_double(x2), kt::as_double(w), 1, false, B, 6, 40, false, false, 1e-6);
    const auto r3 = matmul_ref(kt::as_double(x3), kt::as_double(w), 1, false, B, 6, 40, false, false, 1e-6);
    std::vector<double> masked, leaves, leaves_bound, pw, pw_bound;
    for (std::size_t i = 0; i < r1.want.size(); ++i) {
      const std::size_t row = i / 40, n = i % 40;
      masked.push_back(std::tanh(r1.want[i] * 0.5 + bias[n]));
      // where the product is within rounding of `full`, either branch is right
      const bool near = std::fabs(r2.want[i] - full[i]) <= r2.bound[i];
      leaves.push_back(r2.want[i] > full[i] ? double(full[i] - col[row]) : double(full[i] * bias[n]));
      leaves_bound.push_back(near ? 1e30 : 0.0);
      const double base = std::fabs(r3.want[i]) + 1;
      pw.push_back(std::pow(base, 1.5));
      pw_bound.push_back(1.5 * std::sqrt(base) * r3.bound[i] + 1e-6 * pw.back());
    }
    kt::check_bounded<float>("masked", out.get<float>("masked"), {B, 40}, masked, r1.bound);
    kt::check_bounded<float>("leaves", out.get<float>("leaves"), {B, 40}, leaves, leaves_bound);
    kt::check_bounded<float>("scalar_epilogue", out.get<float>("scalar_epilogue"), {B, 40}, pw, pw_bound);
    auto rb = matmul_ref(kt::as_double(a3), kt::as_double(w), 3, false, 5, 6, 40, false, false, 1e-6);
    for (std::size_t i = 0; i < rb.want.size(); ++i) rb.want[i] = std::max(rb.want[i] + bias[i % 40], -0.25);
    kt::check_bounded<float>("batched", out.get<float>("batched"), {3, 5, 40}, rb.want, rb.bound);
  }
}

// The weight gradient x^T g at every batch size in both orientations of the packet kernel (rows
// of c when N fills packets at least as well as M, rows of c^T otherwise), partial packets on
// either side, and the Eigen path for a large M at a large batch.
TEST_CASE("ops.matmul.batch_contraction.packet_kernel") {
  for (std::int64_t B : {0, 1, 3, 32, 1000}) {
    check_batch_contraction<f32, 3, 37>(B, 1e-6);  // along N: 2 packets + 5 lanes
    check_batch_contraction<f32, 37, 3>(B, 1e-6);  // along M
    check_batch_contraction<f32, 20, 1>(B, 1e-6);  // along M, one column (c^T is c)
    check_batch_contraction<f32, 1, 20>(B, 1e-6);  // along N, one row
    check_batch_contraction<f32, 5, 5>(B, 1e-6);   // a tie: along N
    check_batch_contraction<f32, 9, 300>(B, 1e-6); // along N over 3 column blocks (the last partial)
  }
  check_batch_contraction<f32, 100, 40>(1000, 1e-6);  // M > 64 and batch * M * N > 2^18: Eigen
}
