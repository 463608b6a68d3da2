// The A2C train step shared by bench/a2c_step.cpp and its LibTorch peer: the kiln model, the
// deterministic data and initial weights (bench/a2c_step_pytorch.py computes the same numbers with
// the same formulas), a plain f64 reference of the whole step, and a global operator new that
// counts allocations.
//
// The network is the one of the seed's A2C agent: observations [B,4] -> dense 128 relu (shared)
// -> logits [B,2] and value [B,1]. Loss, summed over the batch:
//   sum_b adv_b * -log softmax(logits_b)[a_b]          (policy, Keras SparseCategoricalCrossentropy
//                                                       from logits, sample_weight = advantages)
//   + 0.5 * sum_b (value_b - return_b)^2               (value)
//   - 1e-4 * sum_b -sum_j p_bj log p_bj                (entropy bonus)
// minimized by Adam (lr 1e-3, beta 0.9 / 0.999, eps 1e-7).
#pragma once
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <vector>
#include <kiln.hpp>
#include "roofline.hpp"
#include "bench_util.hpp"

namespace a2c {

using namespace kiln;

inline constexpr std::int64_t batch_size = 32, obs_dim = 4, hidden = 128, n_actions = 2;
inline constexpr double learning_rate = 1e-3, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
inline constexpr double value_coef = 0.5, entropy_coef = 1e-4;

// A struct rather than a lambda: the bench classes below hold executors of this type, and a
// closure type in a header has no linkage (g++ -Wsubobject-linkage).
struct model_fn {
  constexpr graph operator()() const {
    graph g;
    tensor obs = g.placeholder("obs", f32, {batch, obs_dim});
    tensor actions = g.placeholder("actions", i32, {batch});
    tensor advantages = g.placeholder("advantages", f32, {batch});
    tensor returns = g.placeholder("returns", f32, {batch});
    tensor w1 = g.variable("hidden/kernel", f32, {obs_dim, hidden}, init::glorot_uniform(1));
    tensor b1 = g.variable("hidden/bias", f32, {hidden});
    tensor w2 = g.variable("logits/kernel", f32, {hidden, n_actions}, init::glorot_uniform(2));
    tensor b2 = g.variable("logits/bias", f32, {n_actions});
    tensor w3 = g.variable("value/kernel", f32, {hidden, 1}, init::glorot_uniform(3));
    tensor b3 = g.variable("value/bias", f32, {1});
    tensor h = relu(matmul(obs, w1) + b1);
    tensor logits = matmul(h, w2) + b2;
    tensor value = reshape(matmul(h, w3) + b3, {batch});
    tensor loss = sparse_softmax_cross_entropy(actions, logits, {.sample_weight = advantages, .reduction = reduction::sum}) +
                  value_coef * mean_squared_error(returns, value, {.reduction = reduction::sum}) -
                  entropy_coef * categorical_entropy_from_logits(logits, {.reduction = reduction::sum});
    tensor step = minimize(adam{.learning_rate = learning_rate, .beta_1 = beta1, .beta_2 = beta2, .epsilon = epsilon}, loss);
    g.output("loss", loss);
    g.output("step", step);
    return g;
  }
};
inline constexpr model_fn model{};

// ---- data and initial weights (mirrored in bench/a2c_step_pytorch.py) ----------------------------

struct batch_data {
  std::vector<float> obs, advantages, returns;
  std::vector<std::int32_t> actions;
};

inline batch_data make_batch() {
  batch_data d;
  for (std::int64_t i = 0; i < batch_size * obs_dim; ++i) d.obs.push_back(float(std::sin(0.37 * double(i) + 0.1)));
  for (std::int64_t b = 0; b < batch_size; ++b) {
    d.actions.push_back(std::int32_t((b * 5 + b / 3) % n_actions));
    d.advantages.push_back(float(std::sin(1.3 * double(b) + 0.5)));  // both signs, as in A2C
    d.returns.push_back(float(2.0 * std::cos(0.91 * double(b))));
  }
  return d;
}

// The parameters, row-major with the kiln (Keras) layout: kernels are [in, out].
struct parameter {
  const char* name;
  std::int64_t rows, cols;  // cols == 0 for a bias
  double phase;
};
inline constexpr parameter parameters[] = {
    {"hidden/kernel", obs_dim, hidden, 0.3}, {"hidden/bias", hidden, 0, 0.7},  {"logits/kernel", hidden, n_actions, 1.1},
    {"logits/bias", n_actions, 0, 1.9},      {"value/kernel", hidden, 1, 2.3}, {"value/bias", 1, 0, 2.9},
};

// Glorot-sized deterministic kernels, small nonzero biases (so bias gradients matter from step 1).
inline std::vector<float> initial_values(const parameter& p) {
  const std::int64_t n = p.cols ? p.rows * p.cols : p.rows;
  const double scale = p.cols ? std::sqrt(6.0 / double(p.rows + p.cols)) : 0.05;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[std::size_t(i)] = float(scale * std::sin(0.71 * double(i) + p.phase));
  return v;
}

// Overwrites kiln's initializers with initial_values, so that every implementation starts equal.
template <class Ex> void set_initial_weights(Ex& ex) {
  for (const parameter& p : parameters) {
    const std::vector<float> v = initial_values(p);
    std::memcpy(ex.template variable<float>(p.name).data(), v.data(), v.size() * sizeof(float));
  }
}

// Every variable of the store (weights and the optimizer's slots and step counter) as bytes, to
// put the executor back into a known state between timing rounds: thousands of Adam steps on a
// fixed batch with advantages of both signs drive the logits without bound, and timing a saturated
// softmax (denormals) would measure something a training run never sees.
class store_snapshot {
 public:
  template <class Ex> explicit store_snapshot(Ex& ex) : store_(&ex.vars()) {
    for (std::size_t i = 0; i < store_->size(); ++i) {
      const auto& e = (*store_)[i];
      const std::size_t bytes = std::size_t(e.shape.elements()) * size_of(e.type);
      std::vector<std::byte> copy(bytes);
      std::memcpy(copy.data(), e.data.data(), bytes);
      saved_.push_back(std::move(copy));
    }
  }
  void restore() const {
    for (std::size_t i = 0; i < store_->size(); ++i) {
      auto* e = store_->find((*store_)[i].name);
      std::memcpy(e->data.data(), saved_[i].data(), saved_[i].size());
    }
  }

 private:
  variables* store_;
  std::vector<std::vector<std::byte>> saved_;
};

// One train step, as a user writes it: feeds bound by view on every call.
template <class Ex> KILN_INLINE float kiln_step(Ex& ex, const batch_data& d) {
  const feed feeds[] = {{"obs", view(d.obs.data(), dims{batch_size, obs_dim})},
                        {"actions", view(d.actions.data(), dims{batch_size})},
                        {"advantages", view(d.advantages.data(), dims{batch_size})},
                        {"returns", view(d.returns.data(), dims{batch_size})}};
  return ex.run(feeds).template get<float>("loss").data()[0];
}

// ---- plain f64 reference: forward, hand-derived backward, Keras Adam -----------------------------

class reference {
 public:
  explicit reference(const batch_data& d) : d_(d) {
    for (const parameter& p : parameters) {
      const std::vector<float> v = initial_values(p);
      w_.emplace_back(v.begin(), v.end());
      m_.emplace_back(v.size(), 0.0);
      v_.emplace_back(v.size(), 0.0);
    }
  }

  // Returns the loss at the weights before the update, like the kiln step's "loss" output.
  double step() {
    const auto B = std::size_t(batch_size), H = std::size_t(hidden), A = std::size_t(n_actions), D = std::size_t(obs_dim);
    const auto &W1 = w_[0], &b1 = w_[1], &W2 = w_[2], &b2 = w_[3], &W3 = w_[4], &b3 = w_[5];
    std::vector<std::vector<double>> g(w_.size());
    for (std::size_t k = 0; k < w_.size(); ++k) g[k].assign(w_[k].size(), 0.0);
    double loss = 0;
    std::vector<double> h(H), dh(H), logits(A), p(A), logp(A), dlogits(A);
    for (std::size_t b = 0; b < B; ++b) {
      for (std::size_t j = 0; j < H; ++j) {
        double s = b1[j];
        for (std::size_t i = 0; i < D; ++i) s += double(d_.obs[b * D + i]) * W1[i * H + j];
        h[j] = s > 0 ? s : 0;
      }
      double mx = -1e300, value = b3[0];
      for (std::size_t a = 0; a < A; ++a) {
        logits[a] = b2[a];
        for (std::size_t j = 0; j < H; ++j) logits[a] += h[j] * W2[j * A + a];
        mx = std::max(mx, logits[a]);
      }
      for (std::size_t j = 0; j < H; ++j) value += h[j] * W3[j];
      double z = 0;
      for (std::size_t a = 0; a < A; ++a) z += std::exp(logits[a] - mx);
      double entropy = 0;
      for (std::size_t a = 0; a < A; ++a) {
        logp[a] = logits[a] - mx - std::log(z);
        p[a] = std::exp(logp[a]);
        entropy -= p[a] * logp[a];
      }
      const double adv = d_.advantages[b], ret = d_.returns[b];
      const auto act = std::size_t(d_.actions[b]);
      loss += -adv * logp[act] + value_coef * (value - ret) * (value - ret) - entropy_coef * entropy;
      // d(-adv log p_act)/dz = adv (p - onehot); d(-c H)/dz_k = c p_k (log p_k + H).
      for (std::size_t a = 0; a < A; ++a)
        dlogits[a] = adv * (p[a] - (a == act ? 1.0 : 0.0)) + entropy_coef * p[a] * (logp[a] + entropy);
      const double dvalue = 2 * value_coef * (value - ret);
      for (std::size_t j = 0; j < H; ++j) {
        double s = dvalue * W3[j];
        for (std::size_t a = 0; a < A; ++a) {
          s += dlogits[a] * W2[j * A + a];
          g[2][j * A + a] += h[j] * dlogits[a];
        }
        g[4][j] += h[j] * dvalue;
        dh[j] = h[j] > 0 ? s : 0;
        g[1][j] += dh[j];
        for (std::size_t i = 0; i < D; ++i) g[0][i * H + j] += double(d_.obs[b * D + i]) * dh[j];
      }
      for (std::size_t a = 0; a < A; ++a) g[3][a] += dlogits[a];
      g[5][0] += dvalue;
    }
    ++t_;
    const double lr_t = learning_rate * std::sqrt(1 - std::pow(beta2, t_)) / (1 - std::pow(beta1, t_));
    for (std::size_t k = 0; k < w_.size(); ++k)
      for (std::size_t i = 0; i < w_[k].size(); ++i) {
        m_[k][i] = beta1 * m_[k][i] + (1 - beta1) * g[k][i];
        v_[k][i] = beta2 * v_[k][i] + (1 - beta2) * g[k][i] * g[k][i];
        w_[k][i] -= lr_t * m_[k][i] / (std::sqrt(v_[k][i]) + epsilon);
      }
    return loss;
  }

 private:
  const batch_data& d_;
  std::vector<std::vector<double>> w_, m_, v_;
  double t_ = 0;
};

// Largest |a - b| / max(|b|, 1e-3) over two loss trajectories.
inline double max_relative_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), 1e-3));
  return m;
}

inline std::atomic<std::int64_t> allocations{0};

// ---- timing ---------------------------------------------------------------------------------------

inline double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Per call of f: the median over `samples` blocks of `inner` back-to-back calls, by the wall clock
// and by the calling thread's CPU time. The CPU time leaves out the time other processes held
// the core (this machine is shared), so it is the steadier figure for work that stays on the
// calling thread: kiln's step, and LibTorch with one thread.
struct timing {
  double wall = 0, cpu = 0;
};
template <class F> timing time_blocks(int samples, int inner, F&& f) {
  std::vector<double> wall, cpu;
  for (int s = 0; s < samples; ++s) {
    const auto t0 = bench::clock::now();
    const double c0 = thread_cpu_seconds();
    for (int i = 0; i < inner; ++i) f();
    cpu.push_back((thread_cpu_seconds() - c0) / inner);
    wall.push_back(bench::seconds_since(t0) / inner);
  }
  return {bench::median(std::move(wall)), bench::median(std::move(cpu))};
}
inline timing median_of(const std::vector<timing>& rounds) {
  std::vector<double> wall, cpu;
  for (const timing& t : rounds) wall.push_back(t.wall), cpu.push_back(t.cpu);
  return {bench::median(std::move(wall)), bench::median(std::move(cpu))};
}

// ---- the kiln side of both bench programs -------------------------------------------------------

inline constexpr int checked_steps[] = {0, 1, 10, 99};  // losses printed for tools/bench_a2c.sh

using executor = decltype(compile<cpu>(model));

class kiln_bench {
 public:
  kiln_bench() : ex_(compile<cpu>(model)), data_(make_batch()), initial_((set_initial_weights(ex_), ex_)) {}

  executor& ex() { return ex_; }
  const batch_data& data() const { return data_; }
  void reset() { initial_.restore(); }
  float step() { return kiln_step(ex_, data_); }

  // Losses of the first `n` steps from the initial weights (the state is reset before and after).
  std::vector<double> trajectory(int n) {
    reset();
    std::vector<double> losses;
    for (int i = 0; i < n; ++i) losses.push_back(step());
    reset();
    return losses;
  }

  // Median seconds per step over `samples` blocks of `inner` back-to-back steps, after `inner`
  // warm-up steps, starting from the initial weights.
  timing time_round(int samples, int inner) {
    reset();
    for (int i = 0; i < inner; ++i) step();
    return time_blocks(samples, inner, [&] { bench::do_not_optimize(step()); });
  }

  // Heap allocations per step once the arena exists (counted by the operator new below).
  double allocations_per_step(int steps) {
    reset();
    step();
    const std::int64_t before = allocations.load();
    for (int i = 0; i < steps; ++i) step();
    const std::int64_t count = allocations.load() - before;
    reset();
    return double(count) / steps;
  }

 private:
  executor ex_;
  batch_data data_;
  store_snapshot initial_;
};

// Prints the checks every run makes: the plan, allocations, and the loss trajectory against the
// f64 reference (and the steps tools/bench_a2c.sh compares with PyTorch).
inline void report_kiln_checks(kiln_bench& k, bool print_plan) {
  using P = executor::program_type;
  std::printf("kiln_groups: %d\n", P::plan.n_groups);
  bench::print_plan_work<P>("kiln_a2c_step", batch_size);
  if (print_plan) std::printf("%s", describe<P>().c_str());
  const std::vector<double> losses = k.trajectory(100);
  std::printf("kiln_arena_bytes: %zu\n", k.ex().arena_bytes());
  reference ref(k.data());
  std::vector<double> expected;
  for (int i = 0; i < 100; ++i) expected.push_back(ref.step());
  const double diff = max_relative_diff(losses, expected);
  for (int s : checked_steps) std::printf("kiln_loss_step_%d: %.9g\n", s, losses[std::size_t(s)]);
  std::printf("f64_reference_loss_step_0: %.9g\n", expected[0]);
  std::printf("loss_max_rel_diff_vs_f64_reference: %.3g\n", diff);
  std::printf("loss_match_vs_f64_reference: %s\n", diff <= 1e-3 ? "yes" : "no");
  const double allocs = k.allocations_per_step(1000);
  std::printf("kiln_allocations_per_step: %g\n", allocs);
  std::printf("kiln_arena_allocations: %lld\n", static_cast<long long>(k.ex().arena_allocations()));
}

}  // namespace a2c

// g++ pairs the inlined malloc in these operator new with the free in operator delete and warns
// about a mismatch that is not one: both sides are the replacements below.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// Counting replacements of the global allocation functions (each bench program is one translation
// unit, so these are defined once per program). Every other form of operator new / delete in the
// standard library forwards to these.
void* operator new(std::size_t n) {
  a2c::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t al) {
  a2c::allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = std::max(std::size_t(al), sizeof(void*));
  if (void* p = std::aligned_alloc(a, (n + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
