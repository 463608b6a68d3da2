// CartPole solved by the agents of rl/agents: REINFORCE, A2C, PPO, DQN, Double DQN, Dueling DQN.
//
//   build/examples/cartpole [--agent reinforce|a2c|ppo|dqn|double_dqn|dueling_dqn] [--env v0|v1]
//                           [--seed N] [--max-steps N] [--logdir DIR] [--eval-episodes N]
//                           [--print-every N] [--require-solve] [--keep-training]
//                           [--reward-noise STD] [--value-every N]
//
// Trains until solved (the mean return of the last 20 episodes reaches 195 on v0, 475 on v1) or
// until --max-steps env steps (default 1,000,000), printing a progress line every --print-every
// episodes (default 20) with the latest logged losses, epsilon etc.; then plays the greedy
// policy for --eval-episodes episodes (default 100). The last three lines are always
//   solved_at_env_steps: N      (or not_solved)
//   wall_seconds: X             (of the training, until solved or out of budget)
//   eval_mean_return: R
// --require-solve makes the exit status 1 unless the task was solved within the budget (for
// tests). --keep-training trains for the whole budget even once solved (solved_at_env_steps still
// reports the first solve). With --logdir, TensorBoard scalars go there: episode
// returns and their running mean, losses, entropy, epsilon and mean Q (DQN family), the
// evaluation result. --seed decides the initial weights, the envs' starts and every sample.
//
// The Q-learners (dqn, double_dqn, dueling_dqn) also measure their over-estimation as van Hasselt
// et al. (2016) do: the mean of max_a Q(s, a) over the states their greedy policy visits in 10
// episodes, next to the discounted return (their gamma, the true reward of 1 per step, no time
// limit) it actually collects from those states. The final measurement is printed before the
// last three lines as
//   mean_q_estimate: X
//   true_discounted_return: Y
//   overestimation: X - Y
// --value-every N measures every N env steps during training as well ("value ..." lines; the
// TensorBoard scalars q_estimate, true_return, overestimation).
// --reward-noise STD is the seed's noisy-reward experiment (its RANDOM_REWARD_STD = 1.0): the
// agent learns from 1 + N(0, STD) per step, drawn from a stream of --seed. Episode returns, the
// solved rule, the evaluation and the true returns keep the true reward (the episode length).
// It turns on --value-every 10000 unless that is given.
//
// Hyperparameters: in the seeds' spirit, tuned for a fast, reliable solve of CartPole-v1 (the
// rollout sizes, learning rates and gamma = 0.99 for the Q-learners are the tuned part):
//   reinforce    30-30 relu (He), Adam 1e-3, gamma 0.95, one episode per update, standardized
//                returns (the seed unchanged)
//   a2c          separate 128-relu policy and value networks, RMSprop lr 5e-3 (rho 0.9), actor 1,
//                critic 0.5, entropy 1e-4, gamma 0.99, 8 envs x 5 steps (batch 40), advantages
//                standardized per batch
//   ppo          separate 64-64 tanh networks, Adam 1e-3, clip 0.2, value 0.5, GAE gamma 0.98
//                lambda 0.8, 8 envs x 16 steps, 4 epochs of shuffled minibatches of 32
//   dqn          30-30 relu (He), Adam 1e-3, MSE, gamma 0.99, batch 32, tau 0.08 after every
//                update, replay 50,000, epsilon = 0.01 + 0.99 exp(-0.001 steps), one update per step
//   double_dqn   the same with the Double DQN target
//   dueling_dqn  the same (Double DQN target) with value and advantage streams, Q = V + A - mean A
//
// The agents are compiled in two other translation units (cartpole_policy_gradient.cpp and
// cartpole_q_learning.cpp) to keep each under a minute of compile time.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include "cartpole.hpp"

using namespace cartpole_example;

namespace {

constexpr std::string_view usage =
    "usage: cartpole [--agent reinforce|a2c|ppo|dqn|double_dqn|dueling_dqn] [--env v0|v1] [--seed N]\n"
    "                [--max-steps N] [--logdir DIR] [--eval-episodes N] [--print-every N] [--require-solve]\n"
    "                [--keep-training] [--reward-noise STD] [--value-every N]   (the last two: dqn agents only)\n";

[[noreturn]] void bad_flag(const std::string& why) {
  std::fprintf(stderr, "cartpole: %s\n%.*s", why.c_str(), int(usage.size()), usage.data());
  std::exit(2);
}

std::int64_t parse_integer(std::string_view flag, const char* text, std::int64_t min) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min)
    bad_flag(std::string(flag) + " expects an integer >= " + std::to_string(min) + ", got '" + text + "'");
  return v;
}

double parse_noise(std::string_view flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < 0)
    bad_flag(std::string(flag) + " expects a finite number >= 0, got '" + text + "'");
  return v;
}

flags parse(int argc, char** argv) {
  flags f;
  bool noise_given = false, value_every_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%.*s", int(usage.size()), usage.data());
      std::exit(0);
    }
    if (a == "--require-solve") {
      f.require_solve = true;
      continue;
    }
    if (a == "--keep-training") {
      f.keep_training = true;
      continue;
    }
    const bool known = a == "--agent" || a == "--env" || a == "--seed" || a == "--max-steps" || a == "--logdir" ||
                       a == "--eval-episodes" || a == "--print-every" || a == "--reward-noise" || a == "--value-every";
    if (!known) bad_flag("unknown flag '" + std::string(a) + "'");
    if (i + 1 >= argc) bad_flag(std::string(a) + " needs a value");
    const char* value = argv[++i];
    if (a == "--agent") {
      f.agent = value;
      if (f.agent != "reinforce" && f.agent != "a2c" && f.agent != "ppo" && f.agent != "dqn" && f.agent != "double_dqn" &&
          f.agent != "dueling_dqn")
        bad_flag("unknown agent '" + f.agent + "'");
    } else if (a == "--env") {
      const std::string_view v = value;
      if (v == "v0" || v == "CartPole-v0") f.env = kiln::rl::cartpole::v0;
      else if (v == "v1" || v == "CartPole-v1") f.env = kiln::rl::cartpole::v1;
      else bad_flag("unknown env '" + std::string(v) + "', expected v0 or v1");
    } else if (a == "--seed") {
      f.seed = std::uint64_t(parse_integer(a, value, 0));
    } else if (a == "--max-steps") {
      f.max_steps = parse_integer(a, value, 1);
    } else if (a == "--logdir") {
      f.logdir = value;
      if (f.logdir.empty()) bad_flag("--logdir needs a directory");
    } else if (a == "--eval-episodes") {
      f.eval_episodes = int(parse_integer(a, value, 0));
    } else if (a == "--reward-noise") {
      f.reward_noise = parse_noise(a, value);
      noise_given = true;
    } else if (a == "--value-every") {
      f.value_every = parse_integer(a, value, 0);
      value_every_given = true;
    } else {
      f.print_every = int(parse_integer(a, value, 1));
    }
  }
  // after the loop, so that the flags may come in any order
  const bool q_learner = f.agent == "dqn" || f.agent == "double_dqn" || f.agent == "dueling_dqn";
  if (!q_learner && (noise_given || value_every_given))
    bad_flag(std::string(noise_given ? "--reward-noise" : "--value-every") + " is for the Q-learning agents (dqn, double_dqn, dueling_dqn), not '" +
             f.agent + "'");
  if (f.reward_noise > 0 && !value_every_given) f.value_every = 10'000;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const flags f = parse(argc, argv);
  try {
    if (f.agent == "reinforce") return run_reinforce(f);
    if (f.agent == "a2c") return run_a2c(f);
    if (f.agent == "ppo") return run_ppo(f);
    if (f.agent == "dqn") return run_dqn(f);
    if (f.agent == "double_dqn") return run_double_dqn(f);
    return run_dueling_dqn(f);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cartpole: %s\n", e.what());
    return 1;
  }
}
