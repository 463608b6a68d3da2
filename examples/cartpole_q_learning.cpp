// examples/cartpole: the Q-learning agents (DQN, Double DQN, Dueling DQN). Their hyperparameters
// are listed in examples/cartpole.cpp.
#include <rl/agents/dqn.hpp>
#include "cartpole.hpp"

namespace cartpole_example {

namespace {
using env = rl::cartpole;

constexpr rl::dqn_config dqn_cfg{.hidden1 = 30, .hidden2 = 30, .target = rl::q_target::max, .gamma = 0.99, .tau = 0.08};
constexpr rl::dqn_config double_dqn_cfg{.hidden1 = 30, .hidden2 = 30, .target = rl::q_target::double_q, .gamma = 0.99, .tau = 0.08};
constexpr rl::dqn_config dueling_dqn_cfg{.hidden1 = 30, .hidden2 = 30, .dueling = true, .target = rl::q_target::double_q, .gamma = 0.99, .tau = 0.08};

rl::dqn_options dqn_opts(const flags& f) {
  rl::dqn_options o;
  o.replay_capacity = 50'000;
  o.batch_size = 32;
  o.epsilon = {.max_epsilon = 1.0, .min_epsilon = 0.01, .lambda = 1e-3};
  o.reward_noise_std = f.reward_noise;
  o.value_every = f.value_every;
  o.value_episodes = value_episodes;
  return o;
}
}  // namespace

int run_dqn(const flags& f) { return train_and_evaluate<rl::dqn<env, dqn_cfg>>(f, dqn_opts(f)); }
int run_double_dqn(const flags& f) { return train_and_evaluate<rl::dqn<env, double_dqn_cfg>>(f, dqn_opts(f)); }
int run_dueling_dqn(const flags& f) { return train_and_evaluate<rl::dqn<env, dueling_dqn_cfg>>(f, dqn_opts(f)); }

}  // namespace cartpole_example
