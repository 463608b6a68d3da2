// std::source_location for clang 14 with libstdc++ 12, fuzz builds only (force-included by
// tools/fuzz.sh). libstdc++ defines it only when the compiler has __builtin_source_location, which
// clang gained in version 15; clang 14 (Debian 12's clang, the one with libFuzzer packaged) has the
// older __builtin_FILE/LINE/COLUMN/FUNCTION that give the same answers (constexpr, not consteval:
// clang 14 rejects consteval default arguments here). Newer compilers skip this.
#pragma once
#include <version>
#if !defined(__cpp_lib_source_location)
namespace std {
struct source_location {
  static constexpr source_location current(const char* file = __builtin_FILE(), const char* function = __builtin_FUNCTION(),
                                           unsigned line = __builtin_LINE(), unsigned column = __builtin_COLUMN()) noexcept {
    source_location here;
    here.file_ = file;
    here.function_ = function;
    here.line_ = line;
    here.column_ = column;
    return here;
  }
  constexpr source_location() noexcept = default;
  constexpr unsigned line() const noexcept { return line_; }
  constexpr unsigned column() const noexcept { return column_; }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  unsigned line_ = 0, column_ = 0;
};
}  // namespace std
#endif
