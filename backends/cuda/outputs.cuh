// The values a CUDA run returns: name -> value_ref, like the CPU executor's run_outputs (which
// lives in backends/cpu/executor.hpp, a header nvcc does not compile, hence this twin).
#pragma once
#include <array>
#include <string>
#include <string_view>
#include "../../runtime/view.hpp"

namespace kiln {

template <std::size_t NO> class cuda_outputs {
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
