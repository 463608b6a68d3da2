// Included by reference_*.cpp only (g++): a CPU executor per model, behind reference_session.
#pragma once
#include <kiln.hpp>
#include "models.hpp"
#include "reference.hpp"

namespace cuda_tests {

template <class M> struct cpu_session final : reference_session::impl {
  kiln::cpu_executor<kiln::program<M>> exec;
  host_values run(std::span<const kiln::feed> feeds) override {
    const auto& out = exec.run(feeds);
    host_values r;
    for (std::size_t i = 0; i < out.names.size(); ++i) r.emplace(std::string(out.names[i]), copy_value(out.values[i]));
    return r;
  }
  host_value variable(std::string_view name) override {
    const auto* e = exec.vars().find(name);
    if (!e) throw kiln::error("no variable " + std::string(name));
    return copy_value(e->ref());
  }
};

}  // namespace cuda_tests

#define KILN_REGISTER_REFERENCE(name)                                                                                       \
  static const bool registered_##name = ::cuda_tests::register_reference(#name, [] {                                           \
    return std::unique_ptr<::cuda_tests::reference_session::impl>(new ::cuda_tests::cpu_session<std::remove_cvref_t<decltype(cuda_models::name)>>()); \
  });
