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
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include "cartpole.hpp"
#include "cli.hpp"

using namespace cartpole_example;

namespace {

flags parse(int argc, char** argv) {
  using examples_cli::number;
  flags f;
  CLI::App app("CartPole solved by the agents of rl/agents (see the head of examples/cartpole.cpp).", "cartpole");
  std::string env = "v1";
  app.add_option("--agent", f.agent, "the agent to train")
      ->check(CLI::IsMember({"reinforce", "a2c", "ppo", "dqn", "double_dqn", "dueling_dqn"}))
      ->capture_default_str();
  app.add_option("--env", env, "v0 (CartPole-v0, solved at 195) or v1 (CartPole-v1, solved at 475)")
      ->check(CLI::IsMember({"v0", "v1", "CartPole-v0", "CartPole-v1"}))
      ->capture_default_str();
  number<std::uint64_t>(app, "--seed", f.seed, 0, std::numeric_limits<std::uint64_t>::max(), "weights, env starts and every sample");
  number<std::int64_t>(app, "--max-steps", f.max_steps, 1, std::numeric_limits<std::int64_t>::max(), "env-step budget of the training");
  app.add_option("--logdir", f.logdir, "TensorBoard scalars go here")->check([](const std::string& d) {
    return d.empty() ? std::string("needs a directory") : std::string();
  });
  number<int>(app, "--eval-episodes", f.eval_episodes, 0, std::numeric_limits<int>::max(), "greedy episodes played after the training");
  number<int>(app, "--print-every", f.print_every, 1, std::numeric_limits<int>::max(), "episodes between progress lines");
  app.add_flag("--require-solve", f.require_solve, "exit status 1 unless solved within --max-steps (for tests)");
  app.add_flag("--keep-training", f.keep_training, "train for the whole budget even once solved");
  const auto* noise = number<double>(app, "--reward-noise", f.reward_noise, 0, std::numeric_limits<double>::max(),
                                     "dqn agents: learn from 1 + N(0, STD) per step; turns on --value-every 10000");
  const auto* value_every = number<std::int64_t>(app, "--value-every", f.value_every, 0, std::numeric_limits<std::int64_t>::max(),
                                                 "dqn agents: measure the value estimates every N env steps (0: never)");
  examples_cli::parse(app, argc, argv);
  f.env = env == "v0" || env == "CartPole-v0" ? kiln::rl::cartpole::v0 : kiln::rl::cartpole::v1;
  const bool q_learner = f.agent == "dqn" || f.agent == "double_dqn" || f.agent == "dueling_dqn";
  const bool noise_given = noise->count() > 0, value_every_given = value_every->count() > 0;
  if (!q_learner && (noise_given || value_every_given))
    examples_cli::bad_flag(app, std::string(noise_given ? "--reward-noise" : "--value-every") +
                                    " is for the Q-learning agents (dqn, double_dqn, dueling_dqn), not '" + f.agent + "'");
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
