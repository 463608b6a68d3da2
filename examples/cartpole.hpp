// Shared by the translation units of examples/cartpole (split so that each compiles in well under
// a minute): the flags, the progress log and the train-then-evaluate driver.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <io/tensorboard.hpp>
#include <rl/agents/common.hpp>

namespace cartpole_example {

using namespace kiln;

struct flags {
  std::string agent = "a2c";
  rl::cartpole::version env = rl::cartpole::v1;
  std::uint64_t seed = 0;
  std::int64_t max_steps = 1'000'000;
  std::string logdir;
  int eval_episodes = 100;
  int print_every = 20;
  bool require_solve = false;
  bool keep_training = false;  // train for the whole --max-steps budget even once solved
  // Q-learning agents only: the noise added to the reward they learn from, and how often (env
  // steps, 0: never) to measure their value estimates during training.
  double reward_noise = 0;
  std::int64_t value_every = 0;
};

// Greedy episodes per value measurement (the periodic ones and the final one).
inline constexpr int value_episodes = 10;

// One function per agent, each in the translation unit that compiles its graphs.
int run_reinforce(const flags& f);
int run_a2c(const flags& f);
int run_ppo(const flags& f);
int run_dqn(const flags& f);
int run_double_dqn(const flags& f);
int run_dueling_dqn(const flags& f);

// Progress lines on stdout every `print_every` episodes, ending with the latest value of every
// scalar the agent logs (losses, epsilon, ...); value measurements as lines of their own;
// everything to TensorBoard when enabled.
class progress_log final : public rl::training_log {
 public:
  progress_log(int print_every, summary_writer* tb) : print_every_(print_every), tb_(tb) { scalar_every = 50; }

  void episode(const rl::episode_record& e) override {
    require_finite("the episode return", e.episode_return, e.env_steps);
    if (e.episode % print_every_ == 0) {
      std::printf("episode %6lld  env_steps %8lld  return %5.0f  mean_last_20 %6.1f", static_cast<long long>(e.episode),
                  static_cast<long long>(e.env_steps), e.episode_return, e.mean_return);
      for (const auto& [tag, value] : latest_) std::printf("  %s %.4g", tag.c_str(), value);
      std::printf("\n");
    }
    if (tb_) {
      tb_->scalar("episode/return", e.episode_return, e.env_steps);
      tb_->scalar("episode/mean_return_last_20", e.mean_return, e.env_steps);
    }
  }
  void scalar(std::string_view tag, double value, std::int64_t env_steps) override {
    require_finite("'" + std::string(tag) + "'", value, env_steps);
    auto it = latest_.begin();
    while (it != latest_.end() && it->first != tag) ++it;
    if (it == latest_.end()) latest_.emplace_back(std::string(tag), value);
    else it->second = value;
    if (tb_) tb_->scalar(tag, value, env_steps);
  }
  void value(const rl::value_record& v) override {
    std::printf("value    env_steps %8lld  q_estimate %8.3f  true_return %8.3f  overestimation %+8.3f  states %lld\n",
                static_cast<long long>(v.env_steps), v.q_estimate, v.true_return, v.q_estimate - v.true_return,
                static_cast<long long>(v.states));
    if (tb_) {
      tb_->scalar("q_estimate", v.q_estimate, v.env_steps);
      tb_->scalar("true_return", v.true_return, v.env_steps);
      tb_->scalar("overestimation", v.q_estimate - v.true_return, v.env_steps);
    }
  }

 private:
  // TerminateOnNaN for the agent loop: a NaN or infinite loss or return (e.g. --reward-noise 1e308)
  // would otherwise train on garbage and exit 0. The error ends learn() and the program, non-zero.
  static void require_finite(const std::string& what, double value, std::int64_t env_steps) {
    if (!std::isfinite(value))
      throw error(what + " is " + (std::isnan(value) ? "NaN" : "infinite") + " at env step " + std::to_string(env_steps) +
                  "; training stopped rather than learn from it (a huge --reward-noise overflows the rewards)");
  }

  int print_every_;
  summary_writer* tb_;
  std::vector<std::pair<std::string, double>> latest_;  // in first-logged order: a handful of tags
};

inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Trains `Agent` until solved or out of budget, then evaluates its greedy policy. The last three
// lines printed are solved_at_env_steps (or not_solved), wall_seconds and eval_mean_return. Agents
// with Q values (measure_values) also print their final value measurement before those.
template <class Agent, class Options> int train_and_evaluate(const flags& f, const Options& options) {
  std::unique_ptr<summary_writer> tb;
  if (!f.logdir.empty()) tb = std::make_unique<summary_writer>(f.logdir);
  progress_log log(f.print_every, tb.get());
  const char* env_name = f.env == rl::cartpole::v0 ? "CartPole-v0" : "CartPole-v1";
  std::printf("agent: %s  env: %s  seed: %llu  max_steps: %lld", f.agent.c_str(), env_name, static_cast<unsigned long long>(f.seed),
              static_cast<long long>(f.max_steps));
  if (f.reward_noise > 0) std::printf("  reward_noise_std: %g", f.reward_noise);
  if (f.keep_training) std::printf("  keep_training");
  std::printf("\n");

  Agent agent(f.seed);  // the initial weights are drawn from the seed
  const rl::train_options o{
      .env = f.env, .seed = f.seed, .max_env_steps = f.max_steps, .log = &log, .stop_when_solved = !f.keep_training};
  const double cpu0 = process_cpu_seconds();
  const rl::train_result r = agent.learn(o, options);
  const double cpu = process_cpu_seconds() - cpu0;
  std::printf("training: %lld episodes, %lld env steps, %lld updates, mean return of the last 20 episodes %.1f\n",
              static_cast<long long>(r.episodes), static_cast<long long>(r.env_steps), static_cast<long long>(r.updates), r.last_mean_return);
  std::printf("cpu_seconds: %.4f\n", cpu);

  if constexpr (requires { agent.measure_values(f.env, 1, f.seed); }) {
    // the same start states as the periodic measurements during training
    rl::value_record v = agent.measure_values(f.env, value_episodes, f.seed + Agent::value_seed_offset);
    v.env_steps = r.env_steps;
    if (tb) {
      tb->scalar("q_estimate", v.q_estimate, v.env_steps);
      tb->scalar("true_return", v.true_return, v.env_steps);
      tb->scalar("overestimation", v.q_estimate - v.true_return, v.env_steps);
    }
    std::printf("value_states: %lld (greedy policy, %d episodes)\n", static_cast<long long>(v.states), value_episodes);
    std::printf("mean_q_estimate: %.4f\n", v.q_estimate);
    std::printf("true_discounted_return: %.4f\n", v.true_return);
    std::printf("overestimation: %.4f\n", v.q_estimate - v.true_return);
  }

  // The evaluation episodes start from other seeds than the training envs (seed + i).
  const double eval = agent.evaluate(f.env, f.eval_episodes, f.seed + 1'000'000);
  if (tb) {
    tb->scalar("eval/mean_return", eval, r.env_steps);
    tb->flush();
  }
  std::printf("eval_episodes: %d (greedy policy)\n", f.eval_episodes);
  if (r.solved) std::printf("solved_at_env_steps: %lld\n", static_cast<long long>(r.solved_at_env_steps));
  else std::printf("not_solved\n");
  std::printf("wall_seconds: %.4f\n", r.wall_seconds);
  std::printf("eval_mean_return: %.2f\n", eval);
  if (f.require_solve && !r.solved) return 1;
  return 0;
}

}  // namespace cartpole_example
