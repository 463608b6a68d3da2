// An evaluation of a trained CartPole policy that shares nothing with the library's rl code: the
// physics written out again from gymnasium's cartpole.py (explicit Euler, the same constants), its
// own random starts and episode loop. The "solves CartPole" tests cross-check learn()'s solved
// flag with it: learn() could report success from its own bookkeeping while the policy is poor.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <random>
#include <vector>

namespace cartpole_check {

// gymnasium CartPole-v0: 200 steps at most, solved at a mean return of 195 over 100 episodes.
inline constexpr int v0_max_steps = 200;
inline constexpr double v0_threshold = 195.0;

// policy(observations [n * 4] floats, n, actions [n]) picks an action (0 left, 1 right) per row.
using policy_fn = std::function<void(const std::vector<float>& obs, int n, std::vector<std::int32_t>& actions)>;

// The mean return of `episodes` episodes, all run side by side (one policy call per time step).
inline double mean_return(const policy_fn& policy, int episodes, int max_steps, std::uint64_t seed) {
  const double gravity = 9.8, masscart = 1.0, masspole = 0.1, length = 0.5, force_mag = 10.0, tau = 0.02;
  const double total_mass = masscart + masspole, polemass_length = masspole * length;
  const double theta_limit = 12 * 2 * std::numbers::pi / 360, x_limit = 2.4;
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> start(-0.05, 0.05);
  std::vector<double> s(std::size_t(episodes) * 4);
  for (double& v : s) v = start(gen);
  std::vector<bool> alive(static_cast<std::size_t>(episodes), true);
  std::vector<float> obs(s.size());
  std::vector<std::int32_t> actions(static_cast<std::size_t>(episodes));
  double total = 0;
  for (int t = 0; t < max_steps; ++t) {
    for (std::size_t i = 0; i < s.size(); ++i) obs[i] = float(s[i]);
    policy(obs, episodes, actions);
    bool any = false;
    for (std::size_t e = 0; e < std::size_t(episodes); ++e) {
      if (!alive[e]) continue;
      double* st = &s[e * 4];
      const double force = actions[e] == 1 ? force_mag : -force_mag;
      const double c = std::cos(st[2]), sn = std::sin(st[2]);
      const double temp = (force + polemass_length * st[3] * st[3] * sn) / total_mass;
      const double thetaacc = (gravity * sn - c * temp) / (length * (4.0 / 3.0 - masspole * c * c / total_mass));
      const double xacc = temp - polemass_length * thetaacc * c / total_mass;
      st[0] += tau * st[1];
      st[1] += tau * xacc;
      st[2] += tau * st[3];
      st[3] += tau * thetaacc;
      total += 1.0;  // reward 1 for every step taken, the last one included
      if (std::fabs(st[0]) > x_limit || std::fabs(st[2]) > theta_limit) alive[e] = false;
      any = any || alive[e];
    }
    if (!any) break;
  }
  return total / episodes;
}

// Argmax of each row of `scores` [n, 2] (ties: action 0).
inline void argmax_rows(const float* scores, int n, std::vector<std::int32_t>& actions) {
  for (int i = 0; i < n; ++i) actions[std::size_t(i)] = scores[2 * i + 1] > scores[2 * i] ? 1 : 0;
}

}  // namespace cartpole_check
