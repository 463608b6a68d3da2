// The host emulation of the CUDA executor's elementwise and window groups (value_at and window_at
// are __host__ __device__): check_model runs a model's emulable groups on the host and compares
// them with the model's CPU reference. Used by test_expression_host.cu and test_op_cases_host.cu.
#pragma once
#include <array>
#include <map>
#include <utility>
#include "harness.cuh"

namespace cuda_tests {
using namespace kiln;

// Outputs computed by a plain elementwise group reading only feeds, variables and constants.
template <class P, int G> constexpr bool emulable() {
  constexpr group_info g = P::plan.groups[std::size_t(G)];
  if constexpr (g.kind != group_kind::elementwise || g.anchor >= 0) return false;
  else {
    using plan = cuda_detail::fused_plan<P, G, g.root, g.root>;
    for (int l = 0; l < plan::L; ++l) {
      const int n = plan::table.leaf_node[std::size_t(l)];
      const storage_kind s = P::plan.storage[std::size_t(n)];
      if (P::nodes[std::size_t(n)].kind != op::iota && s != storage_kind::feed && s != storage_kind::variable && s != storage_kind::constant)
        return false;
    }
    return true;
  }
}

template <class P, int G> void emulate(void* const* values, std::int64_t batch_size, std::map<int, host_value>& out) {
  if constexpr (emulable<P, G>()) {
    constexpr int root = P::plan.groups[std::size_t(G)].root;
    using plan = cuda_detail::fused_plan<P, G, root, root>;
    const auto args = plan::make_args(values, batch_size);
    host_value v;
    v.type = P::nodes[root].type;
    v.shape = dims::of(P::nodes[root].out, batch_size);
    for (std::int64_t i = 0; i < plan::elements(batch_size); ++i) {
      const auto x = cuda_detail::value_at<typename plan::expr>(args, i);
      v.data.push_back(double(x));
    }
    out[root] = std::move(v);
  }
}

// A window group whose inputs are feeds: every output element from window_at, as the kernel does.
template <class P, int G> void emulate_window(void* const* values, std::int64_t batch_size, std::map<int, host_value>& out) {
  if constexpr (P::plan.groups[std::size_t(G)].kind == group_kind::window) {
    using plan = cuda_detail::window_plan<P, G>;
    constexpr node n = plan::n;
    constexpr bool fed = P::plan.storage[std::size_t(n.in[0])] == storage_kind::feed &&
                         (!plan::two_inputs || P::plan.storage[std::size_t(n.in[1])] == storage_kind::feed);
    if constexpr (fed) {
      using T = typename plan::T;
      const T* in0 = static_cast<const T*>(values[n.in[0]]);
      const T* in1 = plan::two_inputs ? static_cast<const T*>(values[n.in[1]]) : nullptr;
      const cuda_detail::window_desc d = plan::desc(batch_size);
      host_value v;
      v.type = n.type;
      v.shape = dims::of(n.out, batch_size);
      for (std::int64_t t = 0; t < n.out.elements(batch_size); ++t) v.data.push_back(double(cuda_detail::window_at<n.kind, T>(t, in0, in1, d)));
      out[plan::root] = std::move(v);
    }
  }
}

template <class Model> void check_model(const char* name, Model, std::span<const feed> feeds, double tol) {
  using P = program<Model>;
  std::array<void*, P::N + 1> values{};
  std::int64_t batch_size = 1;
  for (const feed& f : feeds)
    for (int i = 0; i < P::plan.n_feeds; ++i) {
      const node& n = P::nodes[std::size_t(P::plan.feeds[std::size_t(i)])];
      if (n.name.view() != f.name) continue;
      values[std::size_t(P::plan.feeds[std::size_t(i)])] = const_cast<void*>(f.value.data);
      if (n.out.dynamic()) batch_size = f.value.shape.d[0];
    }
  variables store;
  for (int v = 0; v < P::plan.n_variables; ++v) {
    const int id = P::plan.variables[std::size_t(v)];
    values[std::size_t(id)] = store.bind(P::nodes[std::size_t(id)], std::span<const double>(P::pool.data(), P::pool.size()), 0x6b696c6e);
  }
  std::vector<std::vector<std::byte>> constants;
  for (int c = 0; c < P::plan.n_constants; ++c) {
    const int id = P::plan.constants[std::size_t(c)];
    const node& n = P::nodes[std::size_t(id)];
    constants.emplace_back(std::size_t(n.out.static_elements()) * size_of(n.type));
    detail::with_ctype(n.type, [&](auto zero) {
      using T = decltype(zero);
      for (std::int64_t i = 0; i < n.out.static_elements(); ++i)
        reinterpret_cast<T*>(constants.back().data())[i] = static_cast<T>(P::pool[std::size_t(constant_attrs::of(n).pool_offset + i)]);
    });
    values[std::size_t(id)] = constants.back().data();
  }
  std::map<int, host_value> got;
  [&]<std::size_t... G>(std::index_sequence<G...>) {
    (emulate<P, int(G)>(values.data(), batch_size, got), ...);
    (emulate_window<P, int(G)>(values.data(), batch_size, got), ...);
  }(std::make_index_sequence<std::size_t(P::plan.n_groups)>{});

  reference_session cpu(name);
  const auto want = cpu.run(feeds);
  int compared = 0;
  for (const auto& o : P::outputs) {
    const auto it = got.find(o.node);
    if (it == got.end()) continue;
    check_close(it->second, want.at(std::string(o.name.view())), tol, false, std::string(name) + " '" + std::string(o.name.view()) + "'");
    ++compared;
  }
  CHECK(compared > 0);
}

template <class Model> void check_model(const char* name, Model, std::initializer_list<feed> feeds, double tol) {
  check_model(name, Model{}, std::span<const feed>(feeds.begin(), feeds.size()), tol);
}

}  // namespace cuda_tests
