// The variable store: named, persistent tensors that outlive runs and can be shared by several
// executors (a train step and an inference step over the same weights).
#pragma once
#include <cmath>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>
#include "../graph/attributes.hpp"
#include "random.hpp"
#include "view.hpp"

namespace kiln {

namespace detail {

inline void fan_in_out(const shape& s, double& fan_in, double& fan_out) {
  if (s.rank == 0) { fan_in = fan_out = 1; return; }
  if (s.rank == 1) { fan_in = fan_out = double(s.dim[0]); return; }
  double receptive = 1;
  for (int i = 0; i < s.rank - 2; ++i) receptive *= double(s.dim[i]);
  fan_in = double(s.dim[s.rank - 2]) * receptive;
  fan_out = double(s.dim[s.rank - 1]) * receptive;
}

// Resample beyond 2 stddev, as TensorFlow's truncated_normal does.
inline double truncated(std::uint64_t seed, std::uint64_t i) {
  for (std::uint64_t attempt = 0;; ++attempt) {
    const double z = standard_normal(seed, i + attempt * 0x100000000ull);
    if (std::fabs(z) <= 2.0) return z;
  }
}

template <class T> void fill_initial(T* out, const node& n, std::span<const double> pool, std::uint64_t graph_seed) {
  const std::int64_t count = n.out.static_elements();
  const variable_attrs a = variable_attrs::of(n);
  const std::uint64_t seed = mix64((a.seed ? a.seed : graph_seed) ^ hash_name(n.name.view()));
  double fan_in = 1, fan_out = 1;
  fan_in_out(n.out, fan_in, fan_out);
  for (std::int64_t i = 0; i < count; ++i) {
    const auto u = std::uint64_t(i);
    double v = 0;
    switch (a.init) {
      case init_kind::none: case init_kind::zeros: v = 0; break;
      case init_kind::constant: v = a.p0; break;
      case init_kind::uniform: v = a.p0 + (a.p1 - a.p0) * uniform01(seed, u); break;
      case init_kind::normal: v = a.p0 + a.p1 * standard_normal(seed, u); break;
      case init_kind::truncated_normal: v = a.p0 + a.p1 * truncated(seed, u); break;
      // Keras: truncated normal with stddev sqrt(2 / fan_in) / 0.87962566103423978
      case init_kind::he_normal: v = std::sqrt(2.0 / fan_in) / 0.87962566103423978 * truncated(seed, u); break;
      case init_kind::glorot_uniform: {
        const double limit = std::sqrt(6.0 / (fan_in + fan_out));
        v = -limit + 2 * limit * uniform01(seed, u);
        break;
      }
      case init_kind::arange: v = a.p0 + a.p1 * double(i); break;
      case init_kind::values: v = pool[std::size_t(a.pool_offset + i)]; break;
    }
    out[i] = static_cast<T>(v);
  }
}

template <class F> decltype(auto) with_ctype(dtype t, F&& f) {
  switch (t) {
    case dtype::f32: return f(float{});
    case dtype::f64: return f(double{});
    case dtype::i32: return f(std::int32_t{});
    case dtype::i64: return f(std::int64_t{});
    case dtype::u8: return f(std::uint8_t{});
    case dtype::boolean: break;
  }
  return f(bool{});
}

}  // namespace detail

class variables {
 public:
  struct entry {
    std::string name;
    dtype type = dtype::f32;
    kiln::dims shape{};
    bool trainable = true;
    aligned_buffer data;
    value_ref ref() const { return {data.data(), type, shape}; }
  };

  // Returns the storage of variable `n`, creating and initializing it on first use. An existing
  // variable must agree in dtype and shape.
  void* bind(const node& n, std::span<const double> pool, std::uint64_t graph_seed) {
    const kiln::dims want = dims::of(n.out, 1);
    if (entry* e = find(n.name.view())) {
      if (e->type != n.type || !(e->shape == want))
        throw error("kiln: variable '" + e->name + "' exists as " + std::string(name_of(e->type)) + " " + to_string(e->shape) +
                    " but the graph declares it as " + std::string(name_of(n.type)) + " " + to_string(want));
      return e->data.data();
    }
    auto e = std::make_unique<entry>();
    e->name = std::string(n.name.view());
    e->type = n.type;
    e->shape = want;
    e->trainable = n.has(flag_trainable);
    // Variable shapes are static, but a graph may declare one too large to count or allocate.
    std::int64_t bytes = 0;
    if (want.checked_elements() < 0 || !checked_mul(want.checked_elements(), std::int64_t(size_of(n.type)), bytes))
      throw error("kiln: variable '" + e->name + "' has shape " + to_string(want) + ", which " +
                  (want.checked_elements() < 0 ? want.problem() : "has more bytes than int64 can count"));
    try {
      e->data.reset(std::size_t(bytes));
    } catch (const std::bad_alloc&) {
      throw error("kiln: cannot allocate " + std::to_string(bytes) + " bytes for variable '" + e->name + "' " + to_string(want));
    }
    detail::with_ctype(n.type, [&](auto zero) {
      using T = decltype(zero);
      detail::fill_initial(reinterpret_cast<T*>(e->data.data()), n, pool, graph_seed);
    });
    entries_.push_back(std::move(e));
    return entries_.back()->data.data();
  }

  entry* find(std::string_view name) {
    for (auto& e : entries_)
      if (e->name == name) return e.get();
    return nullptr;
  }
  const entry& at(std::string_view name) const {
    for (auto& e : entries_)
      if (e->name == name) return *e;
    std::string known;
    for (auto& e : entries_) known += (known.empty() ? "" : ", ") + e->name;
    throw error("kiln: unknown variable '" + std::string(name) + "'; the store has: " + (known.empty() ? "(none)" : known));
  }
  template <scalar_type T> tensor_view<T> get(std::string_view name) {
    const entry& e = at(name);
    if (e.type != dtype_of<T>())
      throw error("kiln: variable '" + e.name + "' is " + std::string(name_of(e.type)) + ", requested as " + std::string(name_of(dtype_of<T>())));
    return tensor_view<T>(reinterpret_cast<T*>(e.data.data()), e.shape);
  }
  std::size_t size() const { return entries_.size(); }
  const entry& operator[](std::size_t i) const { return *entries_[i]; }

 private:
  std::vector<std::unique_ptr<entry>> entries_;
};

}  // namespace kiln
