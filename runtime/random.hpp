// Counter-based random numbers: value i of a stream depends only on (seed, i), so initializers
// give the same tensors on every backend and thread count.
#pragma once
#include <cmath>
#include <cstdint>
#include <string_view>
#include "../graph/config.hpp"

namespace kiln {

KILN_HD constexpr std::uint64_t mix64(std::uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
constexpr std::uint64_t hash_name(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (char c : s) h = (h ^ std::uint8_t(c)) * 1099511628211ull;
  return h;
}
// uniform in (0, 1)
KILN_HD inline double uniform01(std::uint64_t seed, std::uint64_t counter) {
  return (double(mix64(seed ^ mix64(counter)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
KILN_HD inline double standard_normal(std::uint64_t seed, std::uint64_t counter) {
  const double u1 = uniform01(seed, 2 * counter), u2 = uniform01(seed, 2 * counter + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace kiln
