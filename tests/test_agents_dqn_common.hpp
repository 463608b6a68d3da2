// Shared by tests/test_agents_dqn.cpp and tests/test_agents_dqn_dueling.cpp (two TUs so that
// each compiles in under a minute): small DQN configurations, f64 Q-values of the networks, a
// hand replay batch and the check of the train step's targets against f64.
#pragma once
#include <rl/agents/dqn.hpp>
#include "test_agents_reference.hpp"

namespace dqn_test {
using namespace kiln;
using namespace agents_ref;

constexpr rl::dqn_config small_dqn{.hidden1 = 6, .hidden2 = 5, .target = rl::q_target::max, .gamma = 0.9, .tau = 0.08};
constexpr rl::dqn_config small_double{.hidden1 = 6, .hidden2 = 5, .target = rl::q_target::double_q, .gamma = 0.9, .tau = 0.08};
constexpr rl::dqn_config small_dueling{.hidden1 = 6, .hidden2 = 5, .dueling = true, .target = rl::q_target::double_q, .gamma = 0.9, .tau = 0.08};
using dqn_agent = rl::dqn<rl::cartpole, small_dqn>;
using double_agent = rl::dqn<rl::cartpole, small_double>;
using dueling_agent = rl::dqn<rl::cartpole, small_dueling>;

// Q(s, .) of the network under `prefix` ("online" or "target"), in f64.
inline std::vector<double> q_values(const net_ref& net, const std::string& prefix, const std::vector<double>& x, bool dueling) {
  tape t;
  const std::vector<double> h = net.forward(prefix, 2, x, t, activation_ref::relu);
  if (!dueling) return net.layer_forward(prefix + "/q", h, activation_ref::none, t);
  const double v = net.layer_forward(prefix + "/value", h, activation_ref::none, t)[0];
  const std::vector<double> a = net.layer_forward(prefix + "/advantage", h, activation_ref::none, t);
  double mean = 0;
  for (double x_ : a) mean += x_ / double(a.size());
  std::vector<double> q(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) q[k] = v + (a[k] - mean);
  return q;
}

inline std::size_t argmax_of(const std::vector<double>& v) { return std::size_t(std::max_element(v.begin(), v.end()) - v.begin()); }

struct replay_batch {
  std::int64_t size = 6;
  std::vector<float> obs = kt::uniform<float>(6 * 4, -1.5, 1.5, 41);
  std::vector<float> next_obs = kt::uniform<float>(6 * 4, -1.5, 1.5, 42);
  std::vector<std::int32_t> actions = {0, 1, 1, 0, 1, 0};
  std::vector<float> rewards = {1.0f, 1.0f, 0.5f, 1.0f, -1.0f, 2.0f};
  std::vector<float> dones = {0.0f, 1.0f, 0.0f, 0.0f, 1.0f, 0.0f};
  std::vector<double> row(const std::vector<float>& v, std::int64_t s) const { return {v.begin() + s * 4, v.begin() + s * 4 + 4}; }
};

template <class Agent> const auto& run_train(Agent& agent, const replay_batch& d) {
  return agent.train_step().run({{"obs", view(d.obs.data(), dims{d.size, 4})},
                                 {"actions", view(d.actions.data(), dims{d.size})},
                                 {"rewards", view(d.rewards.data(), dims{d.size})},
                                 {"next_obs", view(d.next_obs.data(), dims{d.size, 4})},
                                 {"dones", view(d.dones.data(), dims{d.size})}});
}

// Online and target networks with different weights, so that the two targets differ.
template <class Agent> void prepare(Agent& agent) {
  set_test_weights(agent.vars(), "online/");
  set_test_weights(agent.vars(), "target/", 1.7);
}

// Checks the train step's targets, loss and mean Q against f64; `double_q` picks the target rule.
// Returns how many rows of the batch the online and target networks disagree on argmax_a Q(s', a).
template <class Agent> int check_targets(bool double_q, bool dueling) {
  Agent agent(2);
  prepare(agent);
  net_ref net(agent.vars(), false);
  const replay_batch d;
  std::vector<double> targets;
  double loss = 0, mean_q = 0;
  int disagreements = 0;
  for (std::int64_t s = 0; s < d.size; ++s) {
    const auto i = std::size_t(s);
    const std::vector<double> next_target = q_values(net, "target", d.row(d.next_obs, s), dueling);
    const std::vector<double> next_online = q_values(net, "online", d.row(d.next_obs, s), dueling);
    disagreements += argmax_of(next_target) != argmax_of(next_online);
    const double next_value = double_q ? next_target[argmax_of(next_online)] : *std::max_element(next_target.begin(), next_target.end());
    const double y = d.rewards[i] + 0.9 * (1.0 - d.dones[i]) * next_value;
    targets.push_back(y);
    const double q = q_values(net, "online", d.row(d.obs, s), dueling)[std::size_t(d.actions[i])];
    loss += (q - y) * (q - y) / double(d.size);
    mean_q += q / double(d.size);
  }
  const auto& out = run_train(agent, d);
  kt::check_values<float>("targets", out.template get<float>("targets"), dims{d.size}, targets, 1e-5, 1e-6);
  CHECK(kt::close(out.template get<float>("loss").item(), loss, 1e-5, 1e-6));
  CHECK(kt::close(out.template get<float>("mean_q").item(), mean_q, 1e-5, 1e-6));
  return disagreements;
}

}  // namespace dqn_test
