// The dueling Q-network (aggregation, Q-values, Double-DQN target against f64) and a short
// solve of CartPole-v0 by the default DQN agent; see test_agents_dqn.cpp for the rest.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cartpole_check.hpp"
#include "test_agents_dqn_common.hpp"

using namespace kiln;
using namespace agents_ref;
using namespace dqn_test;

TEST_CASE("rl.agents.dqn.dueling_aggregation") {
  // Q = V + (A - mean_a A) on a hand batch of two states and three actions
  struct model {
    constexpr graph operator()() const {
      graph g;
      tensor value = g.placeholder("value", f32, {batch, 1});
      tensor advantage = g.placeholder("advantage", f32, {batch, 3});
      g.output("q", rl::q_network<3, small_dueling>::dueling_aggregate(value, advantage));
      return g;
    }
  };
  auto ex = compile<cpu>(model{});
  const std::vector<float> value = {2.0f, -1.0f};
  const std::vector<float> advantage = {1.0f, 2.0f, 6.0f, -3.0f, 0.0f, 0.0f};
  const auto& out = ex.run({{"value", view(value.data(), dims{2, 1})}, {"advantage", view(advantage.data(), dims{2, 3})}});
  // row 0: mean A = 3 -> 2 + (-2, -1, 3); row 1: mean A = -1 -> -1 + (-2, 1, 1)
  kt::check_values<float>("q", out.get<float>("q"), dims{2, 3}, {0.0, 1.0, 5.0, -3.0, 0.0, 0.0}, 0, 1e-6);
}

TEST_CASE("rl.agents.dqn.dueling_network_q_values") {
  dueling_agent agent(3);
  prepare(agent);
  net_ref net(agent.vars(), false);
  const replay_batch d;
  std::vector<double> want;
  for (std::int64_t s = 0; s < d.size; ++s)
    for (double q : q_values(net, "online", d.row(d.obs, s), true)) want.push_back(q);
  const auto& out = agent.act_step().run({{"obs", view(d.obs.data(), dims{d.size, 4})}});
  kt::check_values<float>("q", out.get<float>("q"), dims{d.size, 2}, want, 1e-5, 1e-6);
}

TEST_CASE("rl.agents.dueling_dqn.double_target") { check_targets<dueling_agent>(true, true); }

TEST_CASE("rl.agents.dqn.solves_cartpole_v0") {
  rl::dqn<rl::cartpole, rl::dqn_config{.gamma = 0.99}> agent(1);
  rl::dqn_options r;
  r.epsilon.lambda = 1e-3;
  // solve_window 100: gymnasium's definition of solving v0 (the default window is 20 episodes)
  const rl::train_result result = agent.learn({.env = rl::cartpole::v0, .seed = 1, .max_env_steps = 200'000, .solve_window = 100}, r);
  REQUIRE(result.solved);
  CHECK(result.last_mean_return >= 195.0);
  CHECK(result.updates > 0);
  // learn()'s flag, cross-checked outside the library's rl code (tests/cartpole_check.hpp): the
  // greedy policy (argmax of the Q-values) reaches the v0 threshold over 100 fresh episodes
  const cartpole_check::policy_fn greedy = [&](const std::vector<float>& obs, int n, std::vector<std::int32_t>& actions) {
    cartpole_check::argmax_rows(agent.act_step().run({{"obs", view(obs.data(), dims{n, 4})}}).get<float>("q").data(), n, actions);
  };
  const double greedy_mean = cartpole_check::mean_return(greedy, 100, cartpole_check::v0_max_steps, 5);
  MESSAGE("DQN after learn(): greedy policy's mean return " << greedy_mean << " over 100 episodes");
  CHECK(greedy_mean >= cartpole_check::v0_threshold);
}
