// Fixed-capacity strings usable in constant evaluation: node names and error messages live in
// the constexpr graph, so they cannot own heap memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kiln {

template <std::size_t N> struct fixed_text {
  char text[N]{};
  std::size_t size = 0;

  constexpr fixed_text() = default;
  constexpr fixed_text(std::string_view s) { append(s); }
  constexpr fixed_text& append(std::string_view s) {
    for (char c : s) {
      if (size + 1 >= N) break;  // truncate, keep the terminating zero
      text[size++] = c;
    }
    return *this;
  }
  constexpr fixed_text& append(std::int64_t v) {
    char buf[24]{};
    int n = 0;
    bool neg = v < 0;
    std::uint64_t u = neg ? std::uint64_t(-(v + 1)) + 1 : std::uint64_t(v);
    do { buf[n++] = char('0' + u % 10); u /= 10; } while (u);
    if (neg) append("-");
    while (n) { char c[2] = {buf[--n], 0}; append(std::string_view(c, 1)); }
    return *this;
  }
  constexpr std::string_view view() const { return {text, size}; }
  constexpr bool empty() const { return size == 0; }
  friend constexpr bool operator==(const fixed_text& a, const fixed_text& b) { return a.view() == b.view(); }
};

using name_text = fixed_text<64>;
inline constexpr std::size_t max_name_length = 63;  // what a name_text holds
using message_text = fixed_text<240>;

}  // namespace kiln
