// Command-line flags of the examples, on CLI11 (Debian libcli11-dev): typed options with ranges
// and a generated --help. Every bad flag exits with status 2 and a message naming the flag, what
// it got and the allowed range, its bounds printed exactly.
//
// CLI11 2.1's own numeric conversion is not strict enough for this: it parses integers with base 0
// ("010" is 8), lets strtoll/strtoull saturate ("99999999999999999999" becomes INT64_MAX, "-1" a
// huge unsigned), and its Range validator prints bounds with std::to_string ("%f": 1e-9 shows as
// 0.000000). So each numeric option here gets a validator that parses the text with
// std::from_chars into the option's own type (base 10, overflow is an error), checks the range,
// and hands CLI11 the canonical text of the value it accepted.
#pragma once
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <CLI/CLI.hpp>

namespace examples_cli {

// Shortest text that reads back as exactly this value (1e-09, 0.9, 4294967296).
template <class T> std::string exact_text(T value) {
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  return ec == std::errc{} ? std::string(text, end) : std::string("?");
}

// "an integer in [1, 2147483647]", "a number in [1e-09, 10]", "a number >= 0" (no bound but the type's).
template <class T> std::string range_text(T min, T max) {
  const std::string kind = std::integral<T> ? "an integer" : "a number";
  if (max == std::numeric_limits<T>::max() && std::floating_point<T>) return kind + " >= " + exact_text(min);
  return kind + " in [" + exact_text(min) + ", " + exact_text(max) + "]";
}

// Parses `text` as a T in [min, max]; the whole text must be the number.
template <class T> bool parse_in_range(std::string_view text, T min, T max, T& value) {
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (first != last && *first == '+') {  // from_chars refuses a leading '+'; strtod took it
    ++first;
    if (first != last && *first == '-') return false;
  }
  std::from_chars_result r;
  if constexpr (std::integral<T>) r = std::from_chars(first, last, value, 10);
  else r = std::from_chars(first, last, value, std::chars_format::general);
  if (r.ec != std::errc{} || r.ptr != last || first == last) return false;
  if constexpr (std::floating_point<T>)
    if (!std::isfinite(value)) return false;
  return value >= min && value <= max;
}

// A CLI11 validator that accepts only a T in [min, max] and rewrites the text canonically, so that
// CLI11's conversion afterwards reads exactly the value checked here.
template <class T> CLI::Validator in_range(T min, T max) {
  CLI::Validator v(
      [min, max](std::string& text) -> std::string {
        T value{};
        if (!parse_in_range<T>(text, min, max, value)) return "expects " + range_text(min, max) + ", got '" + text + "'";
        text = exact_text(value);
        return {};
      },
      range_text(min, max));
  return v;
}

// A numeric option bound to `target`, its default shown in --help.
template <class T> CLI::Option* number(CLI::App& app, const std::string& name, T& target, T min, T max, const std::string& help) {
  return app.add_option(name, target, help)->check(in_range<T>(min, max))->capture_default_str();
}

// A flag error found after parsing (a combination, an unknown name): the same form and status as
// CLI11's own errors.
[[noreturn]] inline void bad_flag(const CLI::App& app, const std::string& why) {
  std::fprintf(stderr, "%s: %s\nRun with --help for the flags and their ranges.\n", app.get_name().c_str(), why.c_str());
  std::exit(2);
}

// Parses argv; --help prints the generated help and exits 0, any error exits 2 naming the flag.
inline void parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    bad_flag(app, e.what());
  }
}

}  // namespace examples_cli
