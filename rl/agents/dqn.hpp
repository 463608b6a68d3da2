// Deep Q-learning, Double DQN and Dueling DQN as three compiled executors over one store:
//
//   act:   obs [N, D] -> q [N, A] of the online network
//   train: a replay batch (obs, actions, rewards, next_obs, dones) ->
//            y      = r + gamma (1 - done) * next_value          (no gradient through y)
//            DQN:     next_value = max_a Q_target(s', a)
//            Double:  next_value = Q_target(s', argmax_a Q_online(s', a))
//            loss   = mean_b (Q_online(s_b, a_b) - y_b)^2
//          and the optimizer's update
//   sync:  every target variable <- (1 - tau) target + tau online  (the soft update)
//
// The online network's variables are `online/...`, the target network's `target/...` (not
// trainable, so minimize() leaves them alone); the target starts as a copy of the online one.
// Dueling networks split the last hidden layer into a value stream V(s) and an advantage stream
// A(s, a) and combine them as Q = V + (A - mean_a A).
//
// The seeds: 30-30 relu (He-normal), Adam, MSE, gamma 0.95, batch 32, tau 0.08, a replay of
// 50,000 transitions, epsilon = MIN + (MAX - MIN) exp(-lambda steps); one train step and one soft
// update per env step once the replay holds a batch.
//
// The seed's noisy-reward experiment (RANDOM_REWARD_STD = 1.0 there): with reward_noise_std > 0
// the agent learns from 1 + N(0, std) per step instead of the env's 1, noise that the max in the
// DQN target is expected to turn into over-estimation (van Hasselt 2010); measure_values() puts
// the Q estimates next to the true returns.
#pragma once
#include <cmath>
#include <cstring>
#include "../replay_buffer.hpp"
#include "common.hpp"

namespace kiln::rl {

enum class q_target : std::uint8_t { max, double_q };

struct dqn_config {
  std::int64_t hidden1 = 30, hidden2 = 30;
  bool dueling = false;
  std::int64_t stream_hidden = 0;  // dueling: a relu layer of this many units in each stream (0: none)
  q_target target = q_target::max;
  double gamma = 0.95;
  double tau = 0.08;
  optimizer_config optimizer{.kind = optimizer_kind::adam, .learning_rate = 1e-3};
};

inline constexpr dqn_config dqn_seed{};
inline constexpr dqn_config double_dqn_seed{.target = q_target::double_q};
inline constexpr dqn_config dueling_dqn_seed{.dueling = true, .target = q_target::double_q};

struct dqn_options {
  int num_envs = 1;
  std::size_t replay_capacity = 50'000;
  std::size_t batch_size = 32;
  std::int64_t learning_starts = 32;  // env steps before the first update (at least one batch)
  int train_every = 1;                // vectorized env steps between updates
  int updates_per_train = 1;
  exponential_epsilon epsilon{.max_epsilon = 1.0, .min_epsilon = 0.01, .lambda = 5e-4};
  // The replay stores the env's reward plus N(0, reward_noise_std) (drawn from a stream of the
  // seed); episode returns, the solved rule and evaluation keep the true reward.
  double reward_noise_std = 0;
  // Every value_every env steps (0: never), measure_values() on value_episodes greedy episodes,
  // reported through training_log::value().
  std::int64_t value_every = 0;
  int value_episodes = 10;
};

// The greedy policy's value estimates against the returns it really collects (van Hasselt et al.
// 2016, fig. 3): `episodes` episodes (env i seeded seed + i) played greedily by
// q(obs [m, D]) -> [m, A], averaged over the states of each episode's first max_episode_steps(v)
// steps:
//   q_estimate  = mean of max_a Q(s_t, a)
//   true_return = mean of sum_k gamma^k r_{t+k}, with the env's true reward (1 per step, the
//                 terminal step included)
// The agents bootstrap through time-limit cuts, so their Q estimates the return without a time
// limit: the episodes play on past the limit until they terminate or until the tail left out of
// every measured state's return, at most gamma^H / (1 - gamma), is below 1e-3.
template <class Q> value_record measure_q_values(cartpole::version v, int episodes, std::uint64_t seed, double gamma, Q&& q) {
  if (episodes < 1) throw error("rl::measure_q_values: needs at least one episode, got " + std::to_string(episodes));
  if (!(gamma >= 0.0 && gamma < 1.0)) throw error("rl::measure_q_values: gamma must be in [0, 1), got " + std::to_string(gamma));
  constexpr int D = cartpole::observation_size;
  const std::int64_t measured = cartpole::max_episode_steps(v);
  std::int64_t tail = 0;
  for (double left = 1.0 / (1.0 - gamma); left > 1e-3 && tail < 10'000'000; left *= gamma) ++tail;
  const std::int64_t horizon = measured + tail;

  const std::size_t n = std::size_t(episodes);
  std::vector<cartpole_state> states(n);
  for (std::size_t i = 0; i < n; ++i) {
    cartpole env(v, seed + i);  // the same start states as cartpole(v, seed + i).reset()
    env.reset();
    states[i] = env.state();
  }
  std::vector<std::size_t> running(n);
  for (std::size_t i = 0; i < n; ++i) running[i] = i;
  std::vector<float> obs(n * D);
  double q_sum = 0, return_sum = 0;
  std::int64_t count = 0;
  // G_t = (1 - gamma^(L - t)) / (1 - gamma) for an episode of L steps: summed over its measured t
  auto add_returns = [&](std::int64_t length) {
    for (std::int64_t t = 0; t < std::min(length, measured); ++t) return_sum += (1.0 - std::pow(gamma, double(length - t))) / (1.0 - gamma);
  };
  for (std::int64_t t = 0; !running.empty(); ++t) {
    const std::size_t m = running.size();
    for (std::size_t r = 0; r < m; ++r) {
      const auto o = cartpole::to_observation(states[running[r]]);
      std::copy(o.begin(), o.end(), obs.begin() + std::ptrdiff_t(r * D));
    }
    const tensor_view<const float> values = q(view(obs.data(), dims{std::int64_t(m), D}));
    const std::int64_t a = values.shape().d[1];
    std::size_t kept = 0;
    for (std::size_t r = 0; r < m; ++r) {
      const float* row = values.data() + std::int64_t(r) * a;
      const float* best = std::max_element(row, row + a);  // first index on ties, as greedy_actions
      if (t < measured) {
        q_sum += *best;
        ++count;
      }
      cartpole_state& s = states[running[r]];
      cartpole_physics::integrate(s, best - row == 1);
      if (cartpole_physics::out_of_bounds(s) || t + 1 >= horizon) {
        add_returns(t + 1);
        continue;
      }
      running[kept++] = running[r];
    }
    running.resize(kept);
  }
  return {.q_estimate = q_sum / double(count), .true_return = return_sum / double(count), .states = count};
}

// The two network variants as graph code, with every variable under `prefix`.
template <std::int64_t ActionCount, dqn_config C> struct q_network {
  static constexpr tensor build(graph& g, std::string_view prefix, tensor obs, bool trainable) {
    auto layer = [&](std::string_view name, tensor x, std::int64_t units, activation act) {
      name_text full(prefix);
      full.append("/").append(name);
      return dense(g, full.view(), x, units, act, init::he_normal(), trainable);
    };
    tensor h = layer("hidden0", obs, C.hidden1, activation::relu);
    h = layer("hidden1", h, C.hidden2, activation::relu);
    if constexpr (!C.dueling) {
      return layer("q", h, ActionCount, activation::none);
    } else {
      tensor hv = C.stream_hidden > 0 ? layer("value_hidden", h, C.stream_hidden, activation::relu) : h;
      tensor ha = C.stream_hidden > 0 ? layer("advantage_hidden", h, C.stream_hidden, activation::relu) : h;
      tensor value = layer("value", hv, 1, activation::none);                 // [batch, 1]
      tensor advantage = layer("advantage", ha, ActionCount, activation::none);  // [batch, A]
      return dueling_aggregate(value, advantage);
    }
  }
  // Q = V + (A - mean_a A): the mean keeps V and A identifiable (Wang et al. 2016, eq. 9).
  static constexpr tensor dueling_aggregate(tensor value, tensor advantage) {
    return value + (advantage - reduce_mean(advantage, axes{-1}, true));
  }
};

template <class Env, dqn_config C = dqn_config{}> class dqn {
 public:
  static constexpr std::int64_t obs_size = Env::observation_size, action_count = Env::action_count;
  using network = q_network<action_count, C>;

  struct act_model {
    constexpr graph operator()() const {
      graph g;
      g.output("q", network::build(g, "online", g.placeholder("obs", f32, {batch, obs_size}), true));
      return g;
    }
  };

  struct train_model {
    constexpr graph operator()() const {
      graph g;
      tensor obs = g.placeholder("obs", f32, {batch, obs_size});
      tensor actions = g.placeholder("actions", i32, {batch});
      tensor rewards = g.placeholder("rewards", f32, {batch});
      tensor next_obs = g.placeholder("next_obs", f32, {batch, obs_size});
      tensor dones = g.placeholder("dones", f32, {batch});
      tensor q = network::build(g, "online", obs, true);
      tensor next_q_target = network::build(g, "target", next_obs, false);
      tensor next_value;
      if constexpr (C.target == q_target::double_q) {
        tensor greedy = argmax(network::build(g, "online", next_obs, true), -1);  // chosen by the online network
        next_value = gather(next_q_target, greedy, 1, 1);                        // valued by the target network
      } else {
        next_value = reduce_max(next_q_target, axes{-1});
      }
      tensor targets = stop_gradient(rewards + C.gamma * (1.0 - dones) * next_value);
      tensor q_taken = gather(q, actions, 1, 1);
      tensor loss = mean_squared_error(targets, q_taken);
      g.output("loss", loss);
      g.output("targets", targets);
      g.output("mean_q", reduce_mean(q_taken));
      g.output("step", minimize_with(C.optimizer, loss));
      return g;
    }
  };

  // target <- (1 - tau) target + tau online, for every pair of variables.
  struct sync_model {
    constexpr graph operator()() const {
      graph g;
      // The networks only declare the variables: nothing reads their outputs, so no feed is needed.
      tensor obs = g.placeholder("obs", f32, {batch, obs_size});
      network::build(g, "online", obs, true);
      network::build(g, "target", obs, false);
      const int n = int(g.nodes.size());
      for (int i = 0; i < n; ++i) {
        if (g.at(i).kind != op::variable || !g.at(i).name.view().starts_with("online/")) continue;
        name_text target_name("target/");
        target_name.append(g.at(i).name.view().substr(7));
        for (int j = 0; j < n; ++j)
          if (g.at(j).kind == op::variable && g.at(j).name == target_name) {
            tensor online{&g, i}, target{&g, j};
            assign(target, (1.0 - C.tau) * target + C.tau * online);
          }
      }
      return g;
    }
  };

  using train_executor = decltype(compile<cpu>(train_model{}));
  using act_executor = decltype(compile<cpu>(act_model{}));
  using sync_executor = decltype(compile<cpu>(sync_model{}));

  explicit dqn(std::uint64_t seed = 0)
      : train_(seeded_train_step(store_, seed)), act_(compile<cpu>(act_model{}, &store_)), sync_(compile<cpu>(sync_model{}, &store_)) {
    hard_update();
  }
  dqn(const dqn&) = delete;
  dqn& operator=(const dqn&) = delete;

  variables& vars() { return store_; }
  train_executor& train_step() { return train_; }
  act_executor& act_step() { return act_; }
  sync_executor& sync_step() { return sync_; }

  // target <- online
  void hard_update() {
    for (std::size_t i = 0; i < store_.size(); ++i) {
      const std::string& name = store_[i].name;  // optimizer slots (online/.../m) have no target twin
      if (name.starts_with("online/") && store_.find("target/" + name.substr(7))) copy_variable(store_, name, "target/" + name.substr(7));
    }
  }
  // target <- (1 - tau) target + tau online
  void soft_update() { sync_.run(); }

  // The seed offset of the value-measurement episodes (measure_values during learn()), away from
  // the training envs (seed + i) and the evaluation episodes (seed + 1,000,000 + i).
  static constexpr std::uint64_t value_seed_offset = 2'000'000;

  // measure_q_values() for this agent's greedy policy and gamma.
  value_record measure_values(cartpole::version v, int episodes, std::uint64_t seed) {
    return measure_q_values(v, episodes, seed, C.gamma, [&](value_ref obs) { return act_.run({{"obs", obs}}).template get<float>("q"); });
  }

  void greedy(value_ref obs, std::span<std::int32_t> actions) { greedy_actions(act_.run({{"obs", obs}}).template get<float>("q"), actions); }

  train_result learn(const train_options& o, const dqn_options& r = {}) {
    if (r.num_envs < 1 || r.batch_size < 1 || r.train_every < 1 || r.updates_per_train < 1)
      throw error("dqn: num_envs, batch_size, train_every and updates_per_train must be at least 1");
    if (!(r.reward_noise_std >= 0 && std::isfinite(r.reward_noise_std)))
      throw error("dqn: reward_noise_std must be finite and >= 0, got " + std::to_string(r.reward_noise_std));
    if (r.value_every < 0 || (r.value_every > 0 && r.value_episodes < 1))
      throw error("dqn: value_every must be >= 0 and value_episodes >= 1 when it is on");
    const std::size_t n = std::size_t(r.num_envs);
    cartpole_vec envs(o.env, n, o.seed);
    replay_buffer replay(r.replay_capacity, obs_size, mix64(o.seed ^ 0x7e91a7));
    transition_batch batch(r.batch_size, obs_size);
    rng explore(mix64(o.seed ^ 0xe951));
    training_progress progress(o);
    std::vector<float> obs(n * obs_size);
    std::vector<std::int32_t> actions(n);
    std::vector<float> noisy_rewards(n);
    const std::uint64_t noise_key = mix64(o.seed ^ 0x4e015e);
    std::uint64_t noise_draws = 0;
    envs.reset(o.seed);
    std::int64_t env_steps = 0, updates = 0, vec_steps = 0, next_value = r.value_every;
    double epsilon = r.epsilon(0);
    while (!progress.solved() && !progress.over_budget(env_steps)) {
      epsilon = r.epsilon(env_steps);
      std::memcpy(obs.data(), envs.observations().data(), obs.size() * sizeof(float));
      const tensor_view<const float> q = act_.run({{"obs", envs.observations_view()}}).template get<float>("q");
      for (std::size_t j = 0; j < n; ++j)
        actions[j] = std::int32_t(epsilon_greedy(std::span<const float>(q.data() + j * action_count, action_count), epsilon, explore));
      envs.step(std::span<const std::int32_t>(actions));
      env_steps += std::int64_t(n);
      ++vec_steps;
      // done = terminated: a time-limit cut still has a next state to bootstrap from
      std::span<const float> rewards = envs.rewards();
      if (r.reward_noise_std > 0) {
        for (std::size_t j = 0; j < n; ++j)
          noisy_rewards[j] = rewards[j] + float(r.reward_noise_std * standard_normal(noise_key, noise_draws++));
        rewards = noisy_rewards;
      }
      replay.add_batch(obs, actions, rewards, envs.final_observations(), envs.terminated());
      for (std::size_t j = 0; j < n; ++j)
        if (envs.terminated()[j] || envs.truncated()[j]) progress.finish_episode(envs.episode_lengths()[j], env_steps);
      if (progress.solved()) break;
      if (next_value > 0 && env_steps >= next_value) {
        value_record m = measure_values(o.env, r.value_episodes, o.seed + value_seed_offset);
        m.env_steps = env_steps;
        progress.value(m);
        next_value = (env_steps / r.value_every + 1) * r.value_every;
      }
      if (replay.size() < r.batch_size || env_steps < r.learning_starts || vec_steps % r.train_every != 0) continue;
      for (int u = 0; u < r.updates_per_train; ++u) {
        replay.sample(batch);
        const auto& out = train_.run({{"obs", batch.obs_view()},
                                      {"actions", batch.actions_view()},
                                      {"rewards", batch.rewards_view()},
                                      {"next_obs", batch.next_obs_view()},
                                      {"dones", batch.dones_view()}});
        if (progress.log_scalars(updates)) {
          progress.scalar("loss", out.template get<float>("loss").data()[0], env_steps);
          progress.scalar("mean_q", out.template get<float>("mean_q").data()[0], env_steps);
          progress.scalar("epsilon", epsilon, env_steps);
        }
        soft_update();
        ++updates;
      }
    }
    return progress.finish(env_steps, updates);
  }

  double evaluate(cartpole::version v, int episodes, std::uint64_t seed) {
    return evaluate_policy(v, episodes, seed, [&](value_ref obs, std::span<std::int32_t> a) { greedy(obs, a); });
  }

 private:
  static train_executor seeded_train_step(variables& store, std::uint64_t seed) {
    seed_variables<train_model, sync_model>(store, seed);
    return compile<cpu>(train_model{}, &store);
  }

  variables store_;
  train_executor train_;
  act_executor act_;
  sync_executor sync_;
};

}  // namespace kiln::rl
