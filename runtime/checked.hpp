// Checked size arithmetic for sizes that come from user input (feed dims, batch sizes, arena
// bytes). Signed overflow is undefined behaviour, and a wrapped product turns a size check into a
// heap overflow; these report overflow instead, so callers can throw a kiln::error that names the
// feed or tensor. They run where sizes are bound (once per run or per batch size), never per
// element.
#pragma once
#include <cstdint>
#include <limits>

namespace kiln {

// a * b, or false when the product does not fit in int64.
constexpr bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
constexpr bool checked_add(std::int64_t a, std::int64_t b, std::int64_t& out) { return !__builtin_add_overflow(a, b, &out); }

// The product of n extents, or -1 when one is negative or the product overflows int64.
constexpr std::int64_t checked_elements(const std::int64_t* extents, int n) {
  std::int64_t total = 1;
  for (int i = 0; i < n; ++i)
    if (extents[i] < 0 || !checked_mul(total, extents[i], total)) return -1;
  return total;
}

// a * b clamped to int64's maximum (for cost estimates, where "huge" is all that matters).
constexpr std::int64_t saturating_mul(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  return checked_mul(a, b, out) ? out : std::numeric_limits<std::int64_t>::max();
}

}  // namespace kiln
