// Element types of graph values. Only the six dtypes below exist (u8: frames and images, whose
// cast to f32 fuses into the loop that consumes them); the C++ type of each is fixed
// so that kernels, feeds and checkpoints agree on the bytes.
#pragma once
#include <cstdint>
#include <string_view>

namespace kiln {

enum class dtype : std::uint8_t { f32, f64, i32, i64, boolean, u8 };

template <dtype D> struct ctype_of;
template <> struct ctype_of<dtype::f32> { using type = float; };
template <> struct ctype_of<dtype::f64> { using type = double; };
template <> struct ctype_of<dtype::i32> { using type = std::int32_t; };
template <> struct ctype_of<dtype::i64> { using type = std::int64_t; };
template <> struct ctype_of<dtype::boolean> { using type = bool; };
template <> struct ctype_of<dtype::u8> { using type = std::uint8_t; };
template <dtype D> using ctype = typename ctype_of<D>::type;

template <class T> inline constexpr bool is_kiln_scalar = false;
template <> inline constexpr bool is_kiln_scalar<float> = true;
template <> inline constexpr bool is_kiln_scalar<double> = true;
template <> inline constexpr bool is_kiln_scalar<std::int32_t> = true;
template <> inline constexpr bool is_kiln_scalar<std::int64_t> = true;
template <> inline constexpr bool is_kiln_scalar<bool> = true;
template <> inline constexpr bool is_kiln_scalar<std::uint8_t> = true;

template <class T> concept scalar_type = is_kiln_scalar<T>;

template <scalar_type T> constexpr dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return dtype::f32;
  else if constexpr (std::is_same_v<T, double>) return dtype::f64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return dtype::i32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return dtype::i64;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return dtype::u8;
  else return dtype::boolean;
}

constexpr std::string_view name_of(dtype d) {
  switch (d) {
    case dtype::f32: return "f32";
    case dtype::f64: return "f64";
    case dtype::i32: return "i32";
    case dtype::i64: return "i64";
    case dtype::boolean: return "bool";
    case dtype::u8: return "u8";
  }
  return "?";
}

constexpr std::size_t size_of(dtype d) {
  switch (d) {
    case dtype::f32: case dtype::i32: return 4;
    case dtype::f64: case dtype::i64: return 8;
    case dtype::boolean: case dtype::u8: return 1;
  }
  return 0;
}

constexpr bool is_floating(dtype d) { return d == dtype::f32 || d == dtype::f64; }
constexpr bool is_integer(dtype d) { return d == dtype::i32 || d == dtype::i64 || d == dtype::u8; }
constexpr bool is_numeric(dtype d) { return d != dtype::boolean; }

inline constexpr dtype f32 = dtype::f32;
inline constexpr dtype f64 = dtype::f64;
inline constexpr dtype i32 = dtype::i32;
inline constexpr dtype i64 = dtype::i64;
inline constexpr dtype boolean = dtype::boolean;
inline constexpr dtype u8 = dtype::u8;

}  // namespace kiln
