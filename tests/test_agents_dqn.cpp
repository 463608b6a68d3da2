// The Q-learning agents' graphs (rl/agents/dqn.hpp) against f64 computations on hand batches: the
// dueling aggregation, the DQN target r + gamma (1 - done) max_a Q_target(s', a), Double DQN's
// target (action chosen by the online network, valued by the target network), the loss, and the
// soft and hard target updates.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_agents_dqn_common.hpp"

using namespace kiln;
using namespace agents_ref;
using namespace dqn_test;

TEST_CASE("rl.agents.dqn.target_is_reward_plus_discounted_max_of_target_network") {
  const int disagreements = check_targets<dqn_agent>(false, false);
  CHECK(disagreements > 0);  // the batch tells the max rule from Double DQN's
}

TEST_CASE("rl.agents.double_dqn.target_uses_online_argmax_and_target_value") {
  const int disagreements = check_targets<double_agent>(true, false);
  CHECK(disagreements > 0);
}

TEST_CASE("rl.agents.dqn.soft_and_hard_target_updates") {
  dqn_agent agent(5);
  prepare(agent);
  const net_ref before(agent.vars(), false);
  agent.soft_update();
  const net_ref after(agent.vars(), false);
  int checked = 0;
  for (const auto& [name, online] : before.params) {
    if (!name.starts_with("online/")) continue;
    const std::string target = "target/" + name.substr(7);
    CAPTURE(target);
    const std::vector<double>& old_target = before.params.at(target);
    const std::vector<double>& new_target = after.params.at(target);
    for (std::size_t i = 0; i < online.size(); ++i) {
      CHECK(kt::close(new_target[i], 0.92 * old_target[i] + 0.08 * online[i], 1e-6, 1e-7));
      CHECK(after.params.at(name)[i] == online[i]);  // the online network is left alone
    }
    ++checked;
  }
  CHECK(checked == 6);  // 3 layers, kernel and bias

  agent.hard_update();
  for (const auto& [name, online] : before.params)
    if (name.starts_with("online/")) CHECK(agent.vars().get<float>("target/" + name.substr(7)).to_vector() == agent.vars().get<float>(name).to_vector());
}

TEST_CASE("rl.agents.dqn.train_step_leaves_the_target_network") {
  dqn_agent agent(6);
  prepare(agent);
  const net_ref before(agent.vars(), false);
  run_train(agent, replay_batch{});
  const net_ref after(agent.vars(), false);
  for (const auto& [name, w] : before.params) {
    CAPTURE(name);
    if (name.starts_with("target/")) CHECK(after.params.at(name) == w);
    else CHECK(after.params.at(name) != w);  // every online parameter gets a gradient here
  }
}
