// Helpers shared by the kiln tests: deterministic inputs, and comparisons of run outputs against
// references that the tests compute themselves with plain loops (in double).
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>  // mkdtemp
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>
#include <kiln.hpp>

namespace kt {

// A fresh directory /tmp/kiln-test-<tag>-XXXXXX, removed with its contents at scope exit.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& tag) {
    std::string pattern = "/tmp/kiln-test-" + tag + "-XXXXXX";
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The message of the kiln::error that f throws, or a text saying none was thrown.
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::error& e) {
    return e.what();
  }
  return "(no kiln::error thrown)";
}
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A small PCG-style generator, independent of kiln's counter-based one.
struct rng {
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  std::uint64_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    std::uint64_t x = s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * (1.0 / 9007199254740992.0); }
  std::int64_t integer(std::int64_t lo, std::int64_t hi) { return lo + std::int64_t(next() % std::uint64_t(hi - lo + 1)); }
};

template <class T> std::vector<T> uniform(std::size_t n, double lo, double hi, std::uint64_t seed) {
  rng r(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = T(r.uniform(lo, hi));
  return v;
}
template <class T> std::vector<T> integers(std::size_t n, std::int64_t lo, std::int64_t hi, std::uint64_t seed) {
  rng r(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = T(r.integer(lo, hi));
  return v;
}

// bool tensors cannot live in std::vector<bool> (not contiguous)
struct bools {
  std::unique_ptr<bool[]> p;
  std::size_t n = 0;
  explicit bools(std::size_t count) : p(new bool[count]()), n(count) {}
  bool& operator[](std::size_t i) { return p[i]; }
  bool operator[](std::size_t i) const { return p[i]; }
  kiln::value_ref view(kiln::dims d) const { return kiln::view(static_cast<const bool*>(p.get()), d); }
};

inline bool close(double got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  if (!std::isfinite(got)) return false;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

inline std::string dims_text(const kiln::dims& d) {
  std::string s = "[";
  for (int i = 0; i < d.rank; ++i) s += (i ? "," : "") + std::to_string(d.d[i]);
  return s + "]";
}

// Checks shape and every value; one assertion per tensor, with the first mismatches in the message.
// Compares every element with its reference; `ok(i, got)` decides, `note(i)` adds to a mismatch line.
template <class T, class Ok, class Note>
void check_each(const char* what, kiln::tensor_view<const T> got, const kiln::dims& want_dims, const std::vector<double>& want,
                Ok ok, Note note) {
  INFO(std::string(what));
  REQUIRE_MESSAGE(got.shape() == want_dims, "shape " << dims_text(got.shape()) << ", expected " << dims_text(want_dims));
  REQUIRE(std::size_t(got.size()) == want.size());
  std::size_t bad = 0;
  std::ostringstream first;
  first.precision(10);
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = double(got.flat()[i]);
    if (!ok(i, g)) {
      if (bad < 5) first << " [" << i << "] got " << g << " want " << want[i] << note(i) << ";";
      ++bad;
    }
  }
  CHECK_MESSAGE(bad == 0, std::string(what) << ": " << bad << " of " << want.size() << " values differ:" << first.str());
}

template <class T>
void check_values(const char* what, kiln::tensor_view<const T> got, const kiln::dims& want_dims, const std::vector<double>& want,
                  double rtol = 0, double atol = 0) {
  check_each(what, got, want_dims, want, [&](std::size_t i, double g) { return close(g, want[i], rtol, atol); },
             [](std::size_t) { return std::string(); });
}

// Like check_values, with a per-element bound on |got - want| (e.g. eps * sum |a_k b_k| for dot products).
template <class T>
void check_bounded(const char* what, kiln::tensor_view<const T> got, const kiln::dims& want_dims, const std::vector<double>& want,
                   const std::vector<double>& bound) {
  check_each(what, got, want_dims, want, [&](std::size_t i, double g) { return std::fabs(g - want[i]) <= bound[i]; },
             [&](std::size_t i) {
               std::ostringstream o;
               o.precision(10);
               o << " (bound " << bound[i] << ")";
               return o.str();
             });
}

template <class T> std::vector<double> as_double(const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); }

// Row-major strides of `d`.
inline std::vector<std::int64_t> strides_of(const std::vector<std::int64_t>& d) {
  std::vector<std::int64_t> s(d.size(), 1);
  for (int i = int(d.size()) - 2; i >= 0; --i) s[std::size_t(i)] = s[std::size_t(i) + 1] * d[std::size_t(i) + 1];
  return s;
}
inline std::int64_t count_of(const std::vector<std::int64_t>& d) {
  std::int64_t n = 1;
  for (auto x : d) n *= x;
  return n;
}

// numpy broadcasting reference: evaluates f(a[ia], b[ib]) over the broadcast shape `out`.
inline std::vector<double> broadcast2(const std::vector<double>& a, std::vector<std::int64_t> da, const std::vector<double>& b,
                                      std::vector<std::int64_t> db, const std::vector<std::int64_t>& out,
                                      const std::function<double(double, double)>& f) {
  while (da.size() < out.size()) da.insert(da.begin(), 1);
  while (db.size() < out.size()) db.insert(db.begin(), 1);
  const auto sa = strides_of(da), sb = strides_of(db), so = strides_of(out);
  std::vector<double> r(std::size_t(count_of(out)));
  for (std::int64_t i = 0; i < count_of(out); ++i) {
    std::int64_t ia = 0, ib = 0, rem = i;
    for (std::size_t d = 0; d < out.size(); ++d) {
      const std::int64_t idx = rem / so[d];
      rem %= so[d];
      if (da[d] != 1) ia += idx * sa[d];
      if (db[d] != 1) ib += idx * sb[d];
    }
    r[std::size_t(i)] = f(a[std::size_t(ia)], b[std::size_t(ib)]);
  }
  return r;
}

// ---- inputs shared by the op tests -----------------------------------------------------------------

// General inputs: edge values (zero, negative, large |x|) interleaved with random values.
inline std::vector<double> general_input(std::size_t n, std::uint64_t seed) {
  static const double edges[] = {-100, 0, 100, -1, 1, -0.5, 2.5, -3, 20, -20, 1e-3, -1e-3, 7.25, 50, -50, 0.75};
  rng r(seed);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i % 2 == 0 ? edges[(i / 2) % 16] : r.uniform(-6, 6);
  return v;
}
// Positive inputs for log, sqrt, rsqrt (and bases of pow), including tiny and large values.
inline std::vector<double> positive_input(std::size_t n, std::uint64_t seed) {
  static const double edges[] = {1, 1e-3, 1e4, 0.25, 2, 1e-6, 123.5, 4};
  rng r(seed);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i % 2 == 0 ? edges[(i / 2) % 8] : r.uniform(0.01, 50);
  return v;
}

template <class T> std::vector<T> as(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }
template <class T> std::vector<double> rounded(const std::vector<double>& v) {  // the values the graph actually sees
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = double(T(v[i]));
  return r;
}
template <class F> std::vector<double> map(const std::vector<double>& v, F f) {
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = f(v[i]);
  return r;
}
template <class F> std::vector<double> map2(const std::vector<double>& a, const std::vector<double>& b, F f) {
  std::vector<double> r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = f(a[i], b[i]);
  return r;
}

}  // namespace kt
