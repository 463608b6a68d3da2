// What the RL agents share: dense layers built into a graph, the choice of optimizer as a value
// (so that an agent's configuration can be a template argument), variables seeded at run time,
// the bookkeeping of finished episodes and the "solved" rule, logging hooks, and the greedy
// evaluation that every agent ends with.
//
// Every agent is a class template over the environment (its observation size and action count)
// and a configuration struct passed as a template argument: the graph-shaping choices (hidden
// sizes, optimizer, loss weights) must be compile-time constants because the graphs are compiled
// by the C++ compiler. Rollout choices (number of envs, steps per update, discount) are run-time
// options of the same agents.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "../../kiln.hpp"
#include "../cartpole.hpp"
#include "../returns.hpp"
#include "../rng.hpp"
#include "../schedules.hpp"

namespace kiln::rl {

// ---- graph building blocks --------------------------------------------------------------------------

enum class activation : std::uint8_t { none, relu, tanh };

// A Keras Dense layer: x [batch, in] -> act(x W + b), with `<name>/kernel` [in, units] and
// `<name>/bias` [units] (zeros). Initializers carry no seed of their own so that the graph seed,
// which agents set from their run-time seed (seed_variables below), decides the weights.
constexpr tensor dense(graph& g, std::string_view name, tensor x, std::int64_t units, activation act = activation::relu,
                       initializer kernel_init = init::glorot_uniform(), bool trainable = true,
                       std::source_location loc = std::source_location::current()) {
  if (!x.valid()) return x;
  if (x.rank() != 2 || x.shape().dim[1] == batch)
    return g.fail_with("dense", loc, "'", name, "' expects an input [batch, features], got ", x.shape());
  name_text kernel_name(name), bias_name(name);
  kernel_name.append("/kernel");
  bias_name.append("/bias");
  tensor w = g.variable(kernel_name.view(), x.type(), {x.shape().dim[1], units}, kernel_init, trainable, loc);
  tensor b = g.variable(bias_name.view(), x.type(), {units}, init::zeros(), trainable, loc);
  tensor y = add(matmul(x, w, false, false, loc), b, loc);
  if (act == activation::relu) return relu(y, loc);
  if (act == activation::tanh) return kiln::tanh(y, loc);
  return y;
}

// An optimizer chosen by value, with the hyperparameters the agents' seeds use.
enum class optimizer_kind : std::uint8_t { adam, rmsprop };
struct optimizer_config {
  optimizer_kind kind = optimizer_kind::adam;
  double learning_rate = 1e-3;
  double rho = 0.9;        // rmsprop only (Keras default)
  double epsilon = 1e-7;   // both (Keras default)
  double global_clipnorm = 0;  // 0: no clipping
};

// minimize(loss) with the configured optimizer: one train step's update as assigns.
constexpr tensor minimize_with(const optimizer_config& o, tensor loss, std::source_location loc = std::source_location::current()) {
  if (o.kind == optimizer_kind::rmsprop)
    return minimize(rmsprop{.learning_rate = o.learning_rate, .rho = o.rho, .epsilon = o.epsilon, .global_clipnorm = o.global_clipnorm},
                    loss, {}, loc);
  return minimize(adam{.learning_rate = o.learning_rate, .epsilon = o.epsilon, .global_clipnorm = o.global_clipnorm}, loss, {}, loc);
}

// ---- run-time seeding of the weights ------------------------------------------------------------------

// Creates every variable of the models in `store` before any executor binds them, with the graph
// seed derived from `seed`: executors compiled afterwards find them there and use them as they are,
// so one compiled program serves every seed. Variables created by the first model are shared by
// name with the later ones (optimizer slots and counters are zeros, unaffected by the seed).
template <model... Models> void seed_variables(variables& store, std::uint64_t seed) {
  const std::uint64_t graph_seed = mix64(seed ^ 0x6167656e7473ull);  // "agents"
  auto bind_all = [&]<model M>() {
    using P = program<M>;
    static_assert(P::ok);
    for (int v = 0; v < P::plan.n_variables; ++v)
      store.bind(P::nodes[std::size_t(P::plan.variables[std::size_t(v)])], std::span<const double>(P::pool.data(), P::pool.size()),
                 graph_seed);
  };
  (bind_all.template operator()<Models>(), ...);
}

// Copies the values of `from` into `to` (same dtype and shape): a hard target-network update.
inline void copy_variable(variables& store, std::string_view from, std::string_view to) {
  const auto& a = store.at(from);
  auto* b = store.find(to);
  if (!b) throw error("rl::copy_variable: no variable '" + std::string(to) + "'");
  if (a.type != b->type || !(a.shape == b->shape))
    throw error("rl::copy_variable: '" + std::string(from) + "' " + to_string(a.shape) + " and '" + std::string(to) + "' " +
                to_string(b->shape) + " differ");
  std::copy_n(a.data.data(), std::size_t(a.shape.elements()) * size_of(a.type), b->data.data());
}

// ---- episodes, the solved rule, logging ------------------------------------------------------------

// Solved: the mean return of the last `window` finished episodes reaches the threshold
// (gymnasium's reward_threshold: 195 for CartPole-v0, 475 for v1).
class episode_window {
 public:
  explicit episode_window(int window = 20) : returns_(std::size_t(std::max(window, 1)), 0.0) {}
  void push(double episode_return) {
    returns_[next_] = episode_return;
    next_ = (next_ + 1) % returns_.size();
    ++count_;
  }
  bool full() const { return count_ >= std::int64_t(returns_.size()); }
  double mean() const {
    // re-summed, not the running sum, so rounding cannot accumulate over thousands of episodes
    const std::size_t n = std::size_t(std::min<std::int64_t>(count_, std::int64_t(returns_.size())));
    if (n == 0) return 0.0;
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += returns_[i];
    return s / double(n);
  }
  std::int64_t episodes() const { return count_; }

 private:
  std::vector<double> returns_;
  std::size_t next_ = 0;
  std::int64_t count_ = 0;
};

struct episode_record {
  std::int64_t episode = 0;    // 1-based count of finished episodes
  std::int64_t env_steps = 0;  // env steps taken so far (all envs)
  double episode_return = 0;
  double mean_return = 0;      // over the last `window` episodes (fewer at the start)
};

// A value-estimate measurement (van Hasselt et al. 2016, "Deep RL with Double Q-learning", fig. 3):
// the mean of max_a Q(s, a) over the states the greedy policy visits, next to the mean of the
// discounted returns it actually collects from those same states.
struct value_record {
  std::int64_t env_steps = 0;  // training env steps when measured
  double q_estimate = 0;
  double true_return = 0;
  std::int64_t states = 0;     // states averaged over
};

// The hooks through which agents report progress; the defaults ignore everything. scalar() is
// called every `scalar_every` updates (losses, epsilon, ...), with the env step count as the step.
class training_log {
 public:
  virtual ~training_log() = default;
  virtual void episode(const episode_record&) {}
  virtual void scalar(std::string_view /*tag*/, double /*value*/, std::int64_t /*env_steps*/) {}
  virtual void value(const value_record&) {}
  std::int64_t scalar_every = 50;
};

struct train_options {
  cartpole::version env = cartpole::v1;
  std::uint64_t seed = 0;
  std::int64_t max_env_steps = 1'000'000;
  int solve_window = 20;
  double solve_threshold = 0;  // 0: the env's reward threshold
  training_log* log = nullptr;
  // false: train for the whole budget even once solved (fixed-budget comparisons); the result
  // still reports the first solve
  bool stop_when_solved = true;
  double threshold() const { return solve_threshold > 0 ? solve_threshold : cartpole::reward_threshold(env); }
};

struct train_result {
  bool solved = false;
  std::int64_t solved_at_env_steps = -1;
  std::int64_t env_steps = 0;
  std::int64_t episodes = 0;
  std::int64_t updates = 0;
  double wall_seconds = 0;
  double last_mean_return = 0;
};

// Episode bookkeeping of a training loop: the window, the log, the clock and the budget.
class training_progress {
 public:
  explicit training_progress(const train_options& o)
      : options_(o), window_(o.solve_window), threshold_(o.threshold()), start_(std::chrono::steady_clock::now()) {}

  // Records a finished episode at `env_steps`; true when this one solves the task.
  bool finish_episode(double episode_return, std::int64_t env_steps) {
    window_.push(episode_return);
    if (options_.log)
      options_.log->episode({window_.episodes(), env_steps, episode_return, window_.mean()});
    if (!result_.solved && window_.full() && window_.mean() >= threshold_) {
      result_.solved = true;
      result_.solved_at_env_steps = env_steps;
    }
    return result_.solved;
  }
  // Whether training should stop because the task is solved (never with stop_when_solved off).
  bool solved() const { return result_.solved && options_.stop_when_solved; }
  bool over_budget(std::int64_t env_steps) const { return env_steps >= options_.max_env_steps; }
  // Whether the scalars of this update should be logged (a cheap test; the log is usually off).
  bool log_scalars(std::int64_t update) const {
    return options_.log && options_.log->scalar_every > 0 && update % options_.log->scalar_every == 0;
  }
  void scalar(std::string_view tag, double value, std::int64_t env_steps) const { options_.log->scalar(tag, value, env_steps); }
  void value(const value_record& v) const {
    if (options_.log) options_.log->value(v);
  }

  train_result finish(std::int64_t env_steps, std::int64_t updates) {
    result_.env_steps = env_steps;
    result_.episodes = window_.episodes();
    result_.updates = updates;
    result_.last_mean_return = window_.mean();
    result_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return result_;
  }

 private:
  const train_options& options_;
  episode_window window_;
  double threshold_;
  std::chrono::steady_clock::time_point start_;
  train_result result_;
};

// ---- greedy evaluation ----------------------------------------------------------------------------

// The mean return of `episodes` episodes (each on its own env, seeded seed + i) under a
// deterministic policy. `act(observations [n, D] view, actions span<int32>)` fills one action per
// row for the n envs still running; all of them are stepped together.
template <class Act>
double evaluate_policy(cartpole::version v, int episodes, std::uint64_t seed, Act&& act) {
  if (episodes <= 0) return 0.0;
  const std::size_t n = std::size_t(episodes);
  std::vector<cartpole> envs;
  envs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) envs.emplace_back(v, seed + i);
  std::vector<float> obs(n * cartpole::observation_size);
  std::vector<std::size_t> running(n);
  std::vector<std::int32_t> actions(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto o = envs[i].reset();
    std::copy(o.begin(), o.end(), obs.begin() + std::ptrdiff_t(i * cartpole::observation_size));
    running[i] = i;
  }
  double total = 0;
  while (!running.empty()) {
    const std::size_t m = running.size();
    act(view(obs.data(), dims{std::int64_t(m), cartpole::observation_size}), std::span<std::int32_t>(actions.data(), m));
    std::size_t kept = 0;
    for (std::size_t r = 0; r < m; ++r) {
      cartpole& e = envs[running[r]];
      const auto s = e.step(actions[r]);
      total += s.reward;
      if (s.terminated || s.truncated) continue;
      running[kept] = running[r];
      std::copy(s.obs.begin(), s.obs.end(), obs.begin() + std::ptrdiff_t(kept * cartpole::observation_size));
      ++kept;
    }
    running.resize(kept);
  }
  return total / double(episodes);
}

// Row-wise argmax of a [n, A] f32 output into `actions` (first index on ties).
inline void greedy_actions(tensor_view<const float> scores, std::span<std::int32_t> actions) {
  const std::int64_t a = scores.shape().d[1];
  for (std::size_t r = 0; r < actions.size(); ++r) {
    const float* row = scores.data() + std::int64_t(r) * a;
    actions[r] = std::int32_t(std::max_element(row, row + a) - row);
  }
}

// Rows of `probabilities` [n, A] sampled into `actions`, in row order from one stream.
inline void sample_actions(tensor_view<const float> probabilities, std::span<std::int32_t> actions, rng& g) {
  const std::int64_t a = probabilities.shape().d[1];
  for (std::size_t r = 0; r < actions.size(); ++r)
    actions[r] = std::int32_t(sample_categorical(std::span<const float>(probabilities.data() + std::int64_t(r) * a, std::size_t(a)), g));
}

}  // namespace kiln::rl
