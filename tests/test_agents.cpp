// The RL agents' graphs (rl/agents) against independent f64 computations from the published
// formulas: the A2C loss and the parameters after RMSprop and Adam steps (both seeds' networks),
// PPO's clipped objective, and a short A2C solve of CartPole-v0. The Q-learning agents are in
// test_agents_dqn.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <rl/agents/a2c.hpp>
#include <rl/agents/ppo.hpp>
#include "cartpole_check.hpp"
#include "test_agents_reference.hpp"

using namespace kiln;
using namespace agents_ref;

namespace {

// The A2C of examples/cartpole (separate 128-unit networks, RMSprop) and the first seed's (shared
// 64-64 trunk, Adam, entropy 0.05).
constexpr rl::a2c_config a2c_separate{.hidden = 128, .layers = 1, .shared_trunk = false, .actor_coef = 1.0, .critic_coef = 0.5,
                                      .entropy_coef = 1e-4, .optimizer = {.kind = rl::optimizer_kind::rmsprop, .learning_rate = 5e-3}};
constexpr rl::a2c_config a2c_shared{.hidden = 64, .layers = 2, .shared_trunk = true, .actor_coef = 1.0, .critic_coef = 0.5,
                                    .entropy_coef = 0.05, .optimizer = {.kind = rl::optimizer_kind::adam, .learning_rate = 1e-3}};
using a2c_separate_agent = rl::a2c<rl::cartpole, a2c_separate>;
using a2c_shared_agent = rl::a2c<rl::cartpole, a2c_shared>;

struct a2c_batch {
  std::vector<float> obs, advantages, returns;
  std::vector<std::int32_t> actions;
  std::int64_t size = 0;
};

a2c_batch make_a2c_batch(std::int64_t b, std::uint64_t seed) {
  a2c_batch d;
  d.size = b;
  d.obs = kt::uniform<float>(std::size_t(b * 4), -1.5, 1.5, seed);
  d.actions = kt::integers<std::int32_t>(std::size_t(b), 0, 1, seed + 1);
  d.advantages = kt::uniform<float>(std::size_t(b), -2.0, 2.0, seed + 2);  // both signs, as in A2C
  d.returns = kt::uniform<float>(std::size_t(b), -1.0, 3.0, seed + 3);
  return d;
}

// The A2C loss of one batch in f64 (sums over the batch, as the seeds' Keras losses with
// reduction SUM) and its gradient with respect to every parameter.
struct a2c_terms {
  double policy = 0, value = 0, entropy = 0, loss = 0;
};
a2c_terms a2c_reference(const net_ref& net, const a2c_batch& d, const rl::a2c_config& c, grads_t* grads) {
  a2c_terms t;
  for (std::int64_t s = 0; s < d.size; ++s) {
    const std::vector<double> x(d.obs.begin() + s * 4, d.obs.begin() + s * 4 + 4);
    tape policy_tape, value_tape;
    std::vector<double> logits, value;
    if (c.shared_trunk) {
      const std::vector<double> h = net.forward("trunk", c.layers, x, policy_tape, activation_ref::relu);
      logits = net.layer_forward("policy/logits", h, activation_ref::none, policy_tape);
      value = net.layer_forward("value/out", h, activation_ref::none, value_tape);
    } else {
      logits = net.layer_forward("policy/logits", net.forward("policy", c.layers, x, policy_tape, activation_ref::relu), activation_ref::none,
                                 policy_tape);
      value = net.layer_forward("value/out", net.forward("value", c.layers, x, value_tape, activation_ref::relu), activation_ref::none,
                                value_tape);
    }
    const std::vector<double> logp = log_softmax(logits);
    double entropy = 0;
    for (double l : logp) entropy -= std::exp(l) * l;
    const auto a = std::size_t(d.actions[std::size_t(s)]);
    const double adv = d.advantages[std::size_t(s)], ret = d.returns[std::size_t(s)], v = value[0];
    t.policy += adv * -logp[a];
    t.value += (v - ret) * (v - ret);
    t.entropy += entropy;
    if (!grads) continue;
    // d(adv * -log p_a)/dz = adv (p - onehot_a);  d(-H)/dz_k = p_k (log p_k + H)
    std::vector<double> dlogits(logits.size());
    for (std::size_t k = 0; k < logits.size(); ++k) {
      const double p = std::exp(logp[k]);
      dlogits[k] = c.actor_coef * adv * (p - (k == a ? 1.0 : 0.0)) + c.entropy_coef * p * (logp[k] + entropy);
    }
    const std::vector<double> dvalue = {2 * c.critic_coef * (v - ret)};
    if (c.shared_trunk) {
      // both heads read the trunk's output: their input gradients add up before the trunk
      const std::vector<double> dh_policy = net.layer_backward(policy_tape, dlogits, *grads);
      const std::vector<double> dh_value = net.layer_backward(value_tape, dvalue, *grads);
      std::vector<double> dh(dh_policy.size());
      for (std::size_t k = 0; k < dh.size(); ++k) dh[k] = dh_policy[k] + dh_value[k];
      net.backward(policy_tape, dh, *grads);
    } else {
      net.backward(policy_tape, net.layer_backward(policy_tape, dlogits, *grads), *grads);
      net.backward(value_tape, net.layer_backward(value_tape, dvalue, *grads), *grads);
    }
  }
  t.loss = c.actor_coef * t.policy + c.critic_coef * t.value - c.entropy_coef * t.entropy;
  return t;
}

template <class Agent> const auto& run_a2c_train(Agent& agent, const a2c_batch& d) {
  return agent.train_step().run({{"obs", view(d.obs.data(), dims{d.size, 4})},
                                 {"actions", view(d.actions.data(), dims{d.size})},
                                 {"advantages", view(d.advantages.data(), dims{d.size})},
                                 {"returns", view(d.returns.data(), dims{d.size})}});
}

// Two train steps on two batches: the loss terms before each step, and every parameter after each,
// against the f64 loss, gradient and the optimizer's published update.
template <class Agent> void check_a2c_steps(const rl::a2c_config& c) {
  Agent agent(3);
  set_test_weights(agent.vars());
  net_ref net(agent.vars());
  optimizer_ref opt(c.optimizer);
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const a2c_batch d = make_a2c_batch(12, 100 + std::uint64_t(step) * 10);
    grads_t grads;
    const a2c_terms want = a2c_reference(net, d, c, &grads);
    const auto& out = run_a2c_train(agent, d);
    CHECK(kt::close(out.template get<float>("loss").item(), want.loss, 2e-5, 1e-5));
    CHECK(kt::close(out.template get<float>("policy_loss").item(), want.policy, 2e-5, 1e-5));
    CHECK(kt::close(out.template get<float>("value_loss").item(), want.value, 2e-5, 1e-5));
    CHECK(kt::close(out.template get<float>("entropy").item(), want.entropy, 2e-5, 1e-5));
    opt.apply(net, grads);
    check_parameters(agent.vars(), net, c.optimizer.learning_rate);
  }
}

// The agent's A2C loss minimized by SGD (the agents themselves offer Adam and RMSprop): those two
// divide the gradient by its own running magnitude, so a gradient scaled by a constant leaves their
// steps almost unchanged; SGD's step is the gradient itself and shows any such error.
template <class Agent, double Momentum> struct a2c_sgd_model {
  constexpr graph operator()() const {
    graph g;
    const auto l = Agent::loss_of(g);
    g.output("loss", l.loss);
    g.output("step", minimize(sgd{.learning_rate = 0.05, .momentum = Momentum, .name = "sgd_check"}, l.loss));
    return g;
  }
};

template <class Agent, double Momentum> void check_a2c_sgd_steps(const rl::a2c_config& c) {
  Agent agent(3);
  set_test_weights(agent.vars());
  net_ref net(agent.vars());
  auto train = compile<cpu>(a2c_sgd_model<Agent, Momentum>{}, &agent.vars());
  std::map<std::string, std::vector<double>> velocity;
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const a2c_batch d = make_a2c_batch(12, 300 + std::uint64_t(step) * 10);
    grads_t grads;
    const a2c_terms want = a2c_reference(net, d, c, &grads);
    const auto& out = train.run({{"obs", view(d.obs.data(), dims{d.size, 4})},
                                 {"actions", view(d.actions.data(), dims{d.size})},
                                 {"advantages", view(d.advantages.data(), dims{d.size})},
                                 {"returns", view(d.returns.data(), dims{d.size})}});
    CHECK(kt::close(out.template get<float>("loss").item(), want.loss, 2e-5, 1e-5));
    // Keras SGD: v = momentum v - lr g; w += v (plain SGD: w -= lr g)
    for (auto& [name, w] : net.params) {
      std::vector<double> g(w.size(), 0.0);
      if (auto it = grads.find(name); it != grads.end()) g = it->second;
      auto& v = velocity[name];
      v.resize(w.size(), 0.0);
      for (std::size_t i = 0; i < w.size(); ++i) {
        v[i] = Momentum * v[i] - 0.05 * g[i];
        w[i] += v[i];
      }
    }
    check_parameters(agent.vars(), net, 0.05);
  }
}

}  // namespace

TEST_CASE("rl.agents.a2c.shared_trunk_sgd_steps_match_f64") { check_a2c_sgd_steps<a2c_shared_agent, 0.0>(a2c_shared); }

TEST_CASE("rl.agents.a2c.separate_networks_sgd_momentum_steps_match_f64") {
  check_a2c_sgd_steps<a2c_separate_agent, 0.9>(a2c_separate);
}

TEST_CASE("rl.agents.a2c.separate_networks_rmsprop_steps_match_f64") { check_a2c_steps<a2c_separate_agent>(a2c_separate); }

TEST_CASE("rl.agents.a2c.shared_trunk_adam_steps_match_f64") { check_a2c_steps<a2c_shared_agent>(a2c_shared); }

TEST_CASE("rl.agents.a2c.act_outputs_policy_and_value") {
  a2c_separate_agent agent(5);
  set_test_weights(agent.vars());
  net_ref net(agent.vars());
  const std::vector<float> obs = kt::uniform<float>(5 * 4, -1, 1, 9);
  const auto& out = agent.act_step().run({{"obs", view(obs.data(), dims{5, 4})}});
  std::vector<double> want_probs, want_values;
  for (int s = 0; s < 5; ++s) {
    const std::vector<double> x(obs.begin() + s * 4, obs.begin() + s * 4 + 4);
    tape t;
    const auto logp = log_softmax(
        net.layer_forward("policy/logits", net.forward("policy", 1, x, t, activation_ref::relu), activation_ref::none, t));
    for (double l : logp) want_probs.push_back(std::exp(l));
    want_values.push_back(net.layer_forward("value/out", net.forward("value", 1, x, t, activation_ref::relu), activation_ref::none, t)[0]);
  }
  kt::check_values<float>("probs", out.get<float>("probs"), dims{5, 2}, want_probs, 1e-5, 1e-6);
  kt::check_values<float>("value", out.get<float>("value"), dims{5}, want_values, 1e-5, 1e-6);
}

TEST_CASE("rl.agents.a2c.seed_decides_the_initial_weights") {
  a2c_separate_agent a(1), b(1), c(2);
  const auto wa = a.vars().get<float>("policy/hidden0/kernel").to_vector();
  CHECK(wa == b.vars().get<float>("policy/hidden0/kernel").to_vector());
  CHECK(wa != c.vars().get<float>("policy/hidden0/kernel").to_vector());
  // Glorot-uniform bounds for a [4, 128] kernel
  const double limit = std::sqrt(6.0 / (4 + 128));
  for (float w : wa) CHECK(std::fabs(w) <= limit);
}

TEST_CASE("rl.agents.a2c.solves_cartpole_v0") {
  a2c_separate_agent agent(1);
  // solve_window 100: gymnasium's definition of solving v0 (the default window is 20 episodes)
  const rl::train_options o{.env = rl::cartpole::v0, .seed = 1, .max_env_steps = 300'000, .solve_window = 100};
  const rl::train_result r = agent.learn(o, {.num_envs = 8, .n_steps = 5, .gamma = 0.99, .normalize_advantages = true});
  REQUIRE(r.solved);
  CHECK(r.solved_at_env_steps <= r.env_steps);
  CHECK(r.last_mean_return >= 195.0);
  CHECK(r.episodes >= 20);
  // the greedy policy of a solved run balances far longer than a random one (about 22 steps)
  CHECK(agent.evaluate(rl::cartpole::v0, 20, 77) >= 60.0);
  // learn()'s flag, cross-checked outside the library's rl code (tests/cartpole_check.hpp): the
  // trained policy, sampled as in training, reaches the v0 threshold over 100 fresh episodes
  std::mt19937_64 sampler(2024);
  const cartpole_check::policy_fn sampled = [&](const std::vector<float>& obs, int n, std::vector<std::int32_t>& actions) {
    const auto& out = agent.act_step().run({{"obs", view(obs.data(), dims{n, 4})}});
    const float* probs = out.get<float>("probs").data();
    for (int i = 0; i < n; ++i) actions[std::size_t(i)] = std::uniform_real_distribution<double>(0, 1)(sampler) < probs[2 * i] ? 0 : 1;
  };
  const double sampled_mean = cartpole_check::mean_return(sampled, 100, cartpole_check::v0_max_steps, 5);
  const cartpole_check::policy_fn greedy = [&](const std::vector<float>& obs, int n, std::vector<std::int32_t>& actions) {
    cartpole_check::argmax_rows(agent.act_step().run({{"obs", view(obs.data(), dims{n, 4})}}).get<float>("probs").data(), n, actions);
  };
  MESSAGE("A2C after learn(): mean return over 100 episodes, sampled policy " << sampled_mean << ", greedy policy "
          << cartpole_check::mean_return(greedy, 100, cartpole_check::v0_max_steps, 6));
  CHECK(sampled_mean >= cartpole_check::v0_threshold);
}

// ---- PPO's clipped objective ------------------------------------------------------------------------

namespace {

constexpr rl::ppo_config ppo_small{.hidden = 16, .layers = 1, .hidden_activation = rl::activation::tanh, .clip = 0.2, .value_coef = 0.5,
                                   .entropy_coef = 0.01, .optimizer = {.kind = rl::optimizer_kind::adam, .learning_rate = 1e-3}};
using ppo_agent = rl::ppo<rl::cartpole, ppo_small>;

}  // namespace

TEST_CASE("rl.agents.ppo.clipped_objective_matches_f64") {
  ppo_agent agent(4);
  set_test_weights(agent.vars());
  net_ref net(agent.vars());
  const std::int64_t b = 8;
  const std::vector<float> obs = kt::uniform<float>(std::size_t(b * 4), -1.2, 1.2, 21);
  const std::vector<std::int32_t> actions = {0, 1, 1, 0, 1, 0, 0, 1};
  const std::vector<float> advantages = {1.5f, -0.7f, 2.0f, -1.2f, 0.3f, 0.9f, -2.2f, -0.4f};
  const std::vector<float> returns = kt::uniform<float>(std::size_t(b), -1, 2, 22);
  // old log-probs = current log-prob - shift: ratios exp(shift) of 0.5 ... 1.6 on both sides of the
  // clip range [0.8, 1.2], with advantages of both signs, so every branch of min(r A, clip(r) A) runs
  const std::vector<double> shift = {std::log(1.5), std::log(1.5), std::log(0.6), std::log(0.6), std::log(1.1), std::log(0.9),
                                     std::log(1.6), std::log(0.5)};
  std::vector<float> old_log_probs(static_cast<std::size_t>(b));
  double policy = 0, value = 0, entropy = 0, kl = 0, clipped_count = 0;
  for (std::int64_t s = 0; s < b; ++s) {
    const auto i = std::size_t(s);
    const std::vector<double> x(obs.begin() + s * 4, obs.begin() + s * 4 + 4);
    tape t;
    const auto logp = log_softmax(
        net.layer_forward("policy/logits", net.forward("policy", 1, x, t, activation_ref::tanh), activation_ref::none, t));
    const double v = net.layer_forward("value/out", net.forward("value", 1, x, t, activation_ref::tanh), activation_ref::none, t)[0];
    const double new_logp = logp[std::size_t(actions[i])];
    old_log_probs[i] = float(new_logp - shift[i]);
    const double ratio = std::exp(new_logp - double(old_log_probs[i]));
    const double clipped = std::min(std::max(ratio, 0.8), 1.2);
    policy += std::min(ratio * advantages[i], clipped * advantages[i]);
    value += (returns[i] - v) * (returns[i] - v);
    for (double l : logp) entropy -= std::exp(l) * l;
    kl += double(old_log_probs[i]) - new_logp;
    clipped_count += std::fabs(ratio - 1) > 0.2 ? 1 : 0;
  }
  policy = -policy / double(b), value /= double(b), entropy /= double(b), kl /= double(b);
  const auto& out = agent.train_step().run({{"obs", view(obs.data(), dims{b, 4})},
                                            {"actions", view(actions.data(), dims{b})},
                                            {"old_log_probs", view(old_log_probs.data(), dims{b})},
                                            {"advantages", view(advantages.data(), dims{b})},
                                            {"returns", view(returns.data(), dims{b})}});
  CHECK(kt::close(out.get<float>("policy_loss").item(), policy, 1e-5, 1e-6));
  CHECK(kt::close(out.get<float>("value_loss").item(), value, 1e-5, 1e-6));
  CHECK(kt::close(out.get<float>("entropy").item(), entropy, 1e-5, 1e-6));
  CHECK(kt::close(out.get<float>("loss").item(), policy + 0.5 * value - 0.01 * entropy, 1e-5, 1e-6));
  CHECK(kt::close(out.get<float>("approx_kl").item(), kl, 1e-5, 1e-6));
  CHECK(out.get<float>("clip_fraction").item() == doctest::Approx(clipped_count / double(b)));
  CHECK(clipped_count == 6);  // 1.5 x2, 0.6 x2, 1.6 and 0.5 lie outside [0.8, 1.2]
}

// Where the clip is active, min(r A, clip(r) A) is the constant clip(r) A: such a sample gives the
// policy no gradient. A batch of only such samples therefore moves every parameter exactly as the
// same batch with zero advantages does (where only the value and entropy terms act).
TEST_CASE("rl.agents.ppo.clipped_samples_give_no_policy_gradient") {
  const std::int64_t b = 4;
  const std::vector<float> obs = kt::uniform<float>(std::size_t(b * 4), -1, 1, 31);
  const std::vector<std::int32_t> actions = {0, 1, 0, 1};
  const std::vector<float> advantages = {1.0f, 2.0f, -1.0f, -0.5f};  // r > 1.2 with A > 0, r < 0.8 with A < 0
  const std::vector<float> no_advantages(std::size_t(b), 0.0f);
  const std::vector<double> ratios = {1.5, 1.3, 0.6, 0.7};
  const std::vector<float> returns = {0.5f, -0.5f, 1.0f, 0.0f};
  ppo_agent clipped(4), reference(4);
  set_test_weights(clipped.vars());
  set_test_weights(reference.vars());
  net_ref net(clipped.vars());
  std::vector<float> old_log_probs(static_cast<std::size_t>(b));
  for (std::int64_t s = 0; s < b; ++s) {
    const std::vector<double> x(obs.begin() + s * 4, obs.begin() + s * 4 + 4);
    tape t;
    const auto logp = log_softmax(
        net.layer_forward("policy/logits", net.forward("policy", 1, x, t, activation_ref::tanh), activation_ref::none, t));
    old_log_probs[std::size_t(s)] = float(logp[std::size_t(actions[std::size_t(s)])] - std::log(ratios[std::size_t(s)]));
  }
  auto step = [&](ppo_agent& agent, const std::vector<float>& adv) {
    return agent.train_step()
        .run({{"obs", view(obs.data(), dims{b, 4})},
              {"actions", view(actions.data(), dims{b})},
              {"old_log_probs", view(old_log_probs.data(), dims{b})},
              {"advantages", view(adv.data(), dims{b})},
              {"returns", view(returns.data(), dims{b})}})
        .get<float>("clip_fraction")
        .item();
  };
  CHECK(step(clipped, advantages) == 1.0f);
  step(reference, no_advantages);
  for (const char* name : {"policy/hidden0/kernel", "policy/hidden0/bias", "policy/logits/kernel", "policy/logits/bias"}) {
    CAPTURE(name);
    const auto got = clipped.vars().get<float>(name).to_vector();
    const auto want = reference.vars().get<float>(name).to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(kt::close(got[i], want[i], 1e-6, 1e-9));
    // and the entropy term did move them: the comparison is not between two untouched copies
    CHECK(got != std::vector<float>(net.params.at(name).begin(), net.params.at(name).end()));
  }
}
