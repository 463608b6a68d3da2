#include <stdexcept>
#include "reference.hpp"

namespace cuda_tests {

static std::map<std::string, reference_factory, std::less<>>& registry() {
  static std::map<std::string, reference_factory, std::less<>> r;
  return r;
}

bool register_reference(std::string_view model, reference_factory factory) {
  registry().emplace(std::string(model), factory);
  return true;
}

reference_session::reference_session(std::string_view model) {
  auto it = registry().find(model);
  if (it == registry().end()) throw std::logic_error("no CPU reference registered for model '" + std::string(model) + "'");
  impl_ = it->second();
}
reference_session::~reference_session() = default;

host_value copy_value(const kiln::value_ref& v) {
  host_value h;
  h.type = v.type;
  h.shape = v.shape;
  const std::int64_t n = v.shape.elements();
  h.data.resize(std::size_t(n));
  for (std::int64_t i = 0; i < n; ++i) {
    switch (v.type) {
      case kiln::dtype::f32: h.data[std::size_t(i)] = static_cast<const float*>(v.data)[i]; break;
      case kiln::dtype::f64: h.data[std::size_t(i)] = static_cast<const double*>(v.data)[i]; break;
      case kiln::dtype::i32: h.data[std::size_t(i)] = static_cast<const std::int32_t*>(v.data)[i]; break;
      case kiln::dtype::i64: h.data[std::size_t(i)] = double(static_cast<const std::int64_t*>(v.data)[i]); break;
      case kiln::dtype::boolean: h.data[std::size_t(i)] = static_cast<const bool*>(v.data)[i] ? 1 : 0; break;
    }
  }
  return h;
}

}  // namespace cuda_tests
