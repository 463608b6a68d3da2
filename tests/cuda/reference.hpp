// CPU reference runs for the CUDA tests. The CPU backend (Eigen, oneTBB) is compiled by g++ in
// reference_*.cpp; the .cu files only see this interface, by model name.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "runtime/view.hpp"

namespace cuda_tests {

// A value copied out of a run, widened to double for comparison.
struct host_value {
  kiln::dtype type = kiln::dtype::f32;
  kiln::dims shape{};
  std::vector<double> data;
};
using host_values = std::map<std::string, host_value, std::less<>>;

host_value copy_value(const kiln::value_ref& v);

class reference_session {
 public:
  struct impl {
    virtual ~impl() = default;
    virtual host_values run(std::span<const kiln::feed> feeds) = 0;
    virtual host_value variable(std::string_view name) = 0;
  };
  explicit reference_session(std::string_view model);
  ~reference_session();
  host_values run(std::span<const kiln::feed> feeds) { return impl_->run(feeds); }
  host_values run(std::initializer_list<kiln::feed> feeds) { return run(std::span<const kiln::feed>(feeds.begin(), feeds.size())); }
  host_value variable(std::string_view name) { return impl_->variable(name); }

 private:
  std::unique_ptr<impl> impl_;
};

using reference_factory = std::unique_ptr<reference_session::impl> (*)();
bool register_reference(std::string_view model, reference_factory factory);

}  // namespace cuda_tests
