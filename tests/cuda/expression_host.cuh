// The host emulation of the CUDA executor's elementwise and window groups (value_at and window_at
// are __host__ __device__): check_model runs a model's emulable groups on the host and compares
// them with the model's CPU reference. Used by test_expression_host.cu and test_op_cases_host.cu.
#pragma once
#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include "harness.cuh"

namespace cuda_tests {
using namespace kiln;

// The host emulation runs the groups in plan order and materializes each emulated group's result
// (values[root] points at a typed host copy), so that a later group reading it as a leaf runs too.
// A group whose inputs are not all available (one reads a reduction's or a matmul's result, which
// is not emulated) is left out, and so are the outputs that depend on it.
using host_buffers = std::map<int, std::vector<std::byte>>;

template <class P> void materialize(int root, const host_value& v, void** values, host_buffers& buffers) {
  std::vector<std::byte>& b = buffers[root];
  b.assign(v.data.size() * size_of(v.type), std::byte{0});
  detail::with_ctype(v.type, [&](auto zero) {
    using T = decltype(zero);
    for (std::size_t i = 0; i < v.data.size(); ++i) reinterpret_cast<T*>(b.data())[i] = static_cast<T>(v.data[i]);
  });
  values[root] = b.data();
  resolve_aliases<P>(values);  // reshapes and other views of the result read the same buffer
}

// A plain elementwise group whose leaves are all available (feeds, variables, constants, iota, or
// the results of groups emulated before it).
template <class P, int G> void emulate(void** values, std::int64_t batch_size, std::map<int, host_value>& out, host_buffers& buffers) {
  constexpr group_info g = P::plan.groups[std::size_t(G)];
  if constexpr (g.kind == group_kind::elementwise && g.anchor < 0) {
    constexpr int root = g.root;
    using plan = cuda_detail::fused_plan<P, G, root, root>;
    for (int l = 0; l < plan::L; ++l) {
      const int n = plan::table.leaf_node[std::size_t(l)];
      if (P::nodes[std::size_t(n)].kind != op::iota && values[std::size_t(n)] == nullptr) return;
    }
    const auto args = plan::make_args(values, batch_size);
    host_value v;
    v.type = P::nodes[root].type;
    v.shape = dims::of(P::nodes[root].out, batch_size);
    for (std::int64_t i = 0; i < plan::elements(batch_size); ++i) {
      const auto x = cuda_detail::value_at<typename plan::expr>(args, i);
      v.data.push_back(double(x));
    }
    materialize<P>(root, v, values, buffers);
    out[root] = std::move(v);
  }
}

// A window group whose inputs are available: every output element from window_at, as the kernel does.
template <class P, int G> void emulate_window(void** values, std::int64_t batch_size, std::map<int, host_value>& out, host_buffers& buffers) {
  if constexpr (P::plan.groups[std::size_t(G)].kind == group_kind::window) {
    using plan = cuda_detail::window_plan<P, G>;
    constexpr node n = plan::n;
    if (values[std::size_t(n.in[0])] == nullptr || (plan::two_inputs && values[std::size_t(n.in[1])] == nullptr)) return;
    using T = typename plan::T;
    const T* in0 = static_cast<const T*>(values[n.in[0]]);
    const T* in1 = plan::two_inputs ? static_cast<const T*>(values[n.in[1]]) : nullptr;
    const cuda_detail::window_desc d = plan::desc(batch_size);
    host_value v;
    v.type = n.type;
    v.shape = dims::of(n.out, batch_size);
    for (std::int64_t t = 0; t < n.out.elements(batch_size); ++t) v.data.push_back(double(cuda_detail::window_at<n.kind, T>(t, in0, in1, d)));
    materialize<P>(plan::root, v, values, buffers);
    out[plan::root] = std::move(v);
  }
}

// Which outputs must be compared: all of them (but those named in `not_emulated`, each with the
// reason in the caller's comment), or at least one (the op-case registry, whose models mix in
// groups the host cannot run).
struct coverage {
  bool every_output = true;
  std::vector<std::string> not_emulated{};
};

template <class Model> void check_model(const char* name, Model, std::span<const feed> feeds, double tol, const coverage& cover = {}) {
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
  resolve_aliases<P>(values.data());
  std::map<int, host_value> got;
  host_buffers buffers;
  [&]<std::size_t... G>(std::index_sequence<G...>) {
    ((emulate<P, int(G)>(values.data(), batch_size, got, buffers), emulate_window<P, int(G)>(values.data(), batch_size, got, buffers)), ...);
  }(std::make_index_sequence<std::size_t(P::plan.n_groups)>{});
  // outputs that are views (reshapes) of an emulated result
  for (const auto& [alias, root] : alias_table<P>::pairs)
    if (const auto it = got.find(root); it != got.end() && !got.count(alias)) {
      host_value v = it->second;
      v.type = P::nodes[std::size_t(alias)].type;
      v.shape = dims::of(P::nodes[std::size_t(alias)].out, batch_size);
      got[alias] = std::move(v);
    }

  reference_session cpu(name);
  const auto want = cpu.run(feeds);
  int compared = 0;
  for (const auto& o : P::outputs) {
    const std::string output(o.name.view());
    const bool exempt = std::find(cover.not_emulated.begin(), cover.not_emulated.end(), output) != cover.not_emulated.end();
    const auto it = got.find(o.node);
    if (it == got.end()) {
      // an output the host did not compute is a failure, unless the caller says why it cannot be
      CHECK_MESSAGE((!cover.every_output || exempt), std::string(name) << " '" << output << "': not emulated on the host, so not compared");
      continue;
    }
    CHECK_MESSAGE(!exempt, std::string(name) << " '" << output << "' is listed as not emulated but was compared: update the list");
    check_close(it->second, want.at(output), tol, false, std::string(name) + " '" + output + "'");
    ++compared;
  }
  MESSAGE(std::string(name) << ": " << compared << " of " << P::outputs.size() << " outputs compared");
  CHECK(compared > 0);
}

template <class Model> void check_model(const char* name, Model, std::initializer_list<feed> feeds, double tol, const coverage& cover = {}) {
  check_model(name, Model{}, std::span<const feed>(feeds.begin(), feeds.size()), tol, cover);
}

}  // namespace cuda_tests
