// The values a run returns, by output name. They live in the executor (host memory, for every
// backend) and stay valid until its next run.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include "view.hpp"

namespace kiln {

template <std::size_t NO> class run_outputs {
 public:
  std::array<std::string_view, NO> names{};
  std::array<value_ref, NO> values{};

  const value_ref& operator[](std::string_view name) const {
    for (std::size_t i = 0; i < NO; ++i)
      if (names[i] == name) return values[i];
    std::string known;
    for (auto n : names) known += (known.empty() ? "" : ", ") + std::string(n);
    throw error("kiln: unknown output '" + std::string(name) + "'; outputs are: " + (known.empty() ? "(none)" : known));
  }
  template <scalar_type T> tensor_view<const T> get(std::string_view name) const { return (*this)[name].template as<T>(); }
};

}  // namespace kiln
