// The graph builder. A model is a constexpr function that fills a `graph` and returns it; the
// compiler evaluates it while compiling, so every shape rule below runs at C++ compile time.
#pragma once
#include <initializer_list>
#include <source_location>
#include <string_view>
#include <vector>
#include "attributes.hpp"
#include "node.hpp"

namespace kiln {

class graph;

// A handle to a node of a graph under construction. Invalid handles (after an error) propagate.
struct tensor {
  graph* g = nullptr;
  int id = -1;
  constexpr bool valid() const { return g != nullptr && id >= 0; }
  constexpr const node& info() const;
  constexpr dtype type() const { return info().type; }
  constexpr const kiln::shape& shape() const { return info().out; }
  constexpr int rank() const { return info().out.rank; }
};

struct initializer {
  init_kind kind = init_kind::zeros;
  double p0 = 0, p1 = 0;
  std::uint64_t seed = 0;
};

namespace init {
constexpr initializer zeros() { return {init_kind::zeros}; }
constexpr initializer constant(double v) { return {init_kind::constant, v}; }
constexpr initializer uniform(double lo, double hi, std::uint64_t seed = 0) { return {init_kind::uniform, lo, hi, seed}; }
constexpr initializer normal(double mean, double stddev, std::uint64_t seed = 0) { return {init_kind::normal, mean, stddev, seed}; }
constexpr initializer truncated_normal(double mean, double stddev, std::uint64_t seed = 0) {
  return {init_kind::truncated_normal, mean, stddev, seed};
}
// He et al. 2015: normal(0, sqrt(2 / fan_in)), truncated at 2 stddev as in Keras' he_normal.
constexpr initializer he_normal(std::uint64_t seed = 0) { return {init_kind::he_normal, 0, 0, seed}; }
// Glorot & Bengio 2010: uniform(±sqrt(6 / (fan_in + fan_out))).
constexpr initializer glorot_uniform(std::uint64_t seed = 0) { return {init_kind::glorot_uniform, 0, 0, seed}; }
// start, start + step, ... in row-major order.
constexpr initializer arange(double start = 0, double step = 1) { return {init_kind::arange, start, step}; }
}  // namespace init

// What a variable is for (graph::variable's `flags`): trainable ones are what minimize() updates
// by default; metric state is what metrics::reset_all zeroes.
struct variable_flags {
  bool trainable = true;
  bool metric_state = false;
  constexpr std::uint32_t bits() const { return (trainable ? flag_trainable : 0u) | (metric_state ? flag_metric_state : 0u); }
};

// A custom_gradient() VJP: the graph computing dxs[j] from the stand-in upstream node `upstream`.
struct custom_rule {
  int upstream = -1;
  std::vector<int> xs, dxs;
};

struct output_entry {
  name_text name{};
  int node = -1;
};

class graph {
 public:
  std::vector<node> nodes;
  std::vector<double> pool;  // values of tensor constants and explicit variable initializers
  std::vector<output_entry> outputs;
  // custom_gradient() rules; a custom_gradient node names its rule (custom_gradient_attrs).
  // Only gradients() reads them.
  std::vector<custom_rule> custom_rules;
  message_text error{};
  std::uint64_t seed = 0x6b696c6e;  // graph-level seed, combined with per-variable seeds

  constexpr graph() = default;
  constexpr graph(const graph& o) = default;
  constexpr graph& operator=(const graph&) = default;

  constexpr bool ok() const { return error.empty(); }
  constexpr const node& at(int id) const { return nodes[std::size_t(id)]; }

  // Records the first error; later errors are consequences of it and are dropped.
  constexpr tensor fail(const message_text& m) {
    if (error.empty()) error = m;
    return tensor{this, -1};
  }
  template <class... Parts> constexpr tensor fail_with(std::string_view op_name, const std::source_location& loc, const Parts&... parts) {
    message_text m;
    m.append(op_name).append(": ");
    (append_part(m, parts), ...);
    append_location(m, loc);
    return fail(m);
  }

  // Adds a node, or returns the identical node that already exists (common subexpressions).
  // An open-addressing table over node hashes keeps this O(1): graphs of thousands of nodes must
  // stay cheap to build in constant evaluation.
  constexpr tensor add(node n, const std::source_location& loc) {
    const std::uint64_t h = n.hash();
    if (const int existing = find_same(n, h); existing >= 0) return tensor{this, existing};
    n.line = int(loc.line());
    n.file = loc.file_name();
    return append(n, h);
  }

  // Adds a node built elsewhere (a rewrite of graph/lower.hpp) keeping where it was declared;
  // common subexpressions are merged as in add().
  constexpr tensor emit(const node& n) {
    const std::uint64_t h = n.hash();
    if (const int existing = find_same(n, h); existing >= 0) return tensor{this, existing};
    return append(n, h);
  }

  constexpr tensor placeholder(std::string_view name, dtype t, kiln::shape s,
                               std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_name("placeholder", name, loc) || !check_shape("placeholder", name, s, loc)) return tensor{this, -1};
    for (int i = 1; i < s.rank; ++i)
      if (s.dim[i] == batch) return fail_with("placeholder", loc, "'", name, "': only the leading dimension may be kiln::batch");
    if (auto existing = find_named(op::placeholder, name); existing >= 0) {
      if (!(nodes[std::size_t(existing)].out == s) || nodes[std::size_t(existing)].type != t)
        return fail_with("placeholder", loc, "'", name, "' declared twice with different dtype or shape: ", nodes[std::size_t(existing)].type,
                         " ", nodes[std::size_t(existing)].out, " vs ", t, " ", s);
      return tensor{this, existing};
    }
    node n;
    n.kind = op::placeholder;
    n.type = t;
    n.out = s;
    n.name = name_text(name);
    return add_named(n, loc);
  }

  constexpr tensor variable(std::string_view name, dtype t, kiln::shape s, initializer init = kiln::init::zeros(),
                            bool trainable = true, std::source_location loc = std::source_location::current()) {
    return variable(name, t, s, init, variable_flags{.trainable = trainable}, loc);
  }

  constexpr tensor variable(std::string_view name, dtype t, kiln::shape s, initializer init, variable_flags flags,
                            std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_name("variable", name, loc) || !check_shape("variable", name, s, loc)) return tensor{this, -1};
    if (s.dynamic()) return fail_with("variable", loc, "'", name, "': variables need static shapes");
    node n;
    n.kind = op::variable;
    n.type = t;
    n.out = s;
    n.name = name_text(name);
    variable_attrs{init.kind, init.p0, init.p1, init.seed, 0}.store(n);
    n.flags = flags.bits();
    return add_variable(n, loc);
  }

  constexpr tensor variable(std::string_view name, dtype t, kiln::shape s, std::initializer_list<double> values,
                            bool trainable = true, std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_name("variable", name, loc) || !check_shape("variable", name, s, loc)) return tensor{this, -1};
    if (std::int64_t(values.size()) != s.static_elements() || s.dynamic())
      return fail_with("variable", loc, "'", name, "': ", std::int64_t(values.size()), " initial values for shape ", s);
    node n;
    n.kind = op::variable;
    n.type = t;
    n.out = s;
    n.name = name_text(name);
    variable_attrs{init_kind::values, 0, 0, 0, std::int64_t(pool.size())}.store(n);
    for (double v : values) pool.push_back(v);
    n.flags = variable_flags{.trainable = trainable}.bits();
    return add_variable(n, loc);
  }

  // A scalar constant; fused loops read it as an immediate.
  constexpr tensor scalar(double v, dtype t, std::source_location loc = std::source_location::current()) {
    node n;
    n.kind = op::scalar;
    n.type = t;
    immediate_attrs{v}.store(n);
    return add(n, loc);
  }

  constexpr tensor constant(std::initializer_list<double> values, dtype t, kiln::shape s,
                            std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_shape("constant", "", s, loc)) return tensor{this, -1};
    if (s.dynamic() || std::int64_t(values.size()) != s.static_elements())
      return fail_with("constant", loc, std::int64_t(values.size()), " values for shape ", s);
    node n;
    n.kind = op::constant;
    n.type = t;
    n.out = s;
    constant_attrs{std::int64_t(pool.size())}.store(n);
    // Identical constants share one node: compare against the pool before growing it.
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const node& o = nodes[i];
      if (o.kind != op::constant || o.type != t || !(o.out == s)) continue;
      bool same = true;
      std::size_t j = 0;
      for (double v : values) same = same && pool[std::size_t(constant_attrs::of(o).pool_offset) + j++] == v;
      if (same) return tensor{this, int(i)};
    }
    for (double v : values) pool.push_back(v);
    return add(n, loc);
  }

  // start, start + step, ... filling `s` in row-major order (numpy arange, reshaped).
  constexpr tensor iota(kiln::shape s, dtype t, double start = 0, double step = 1,
                        std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_shape("iota", "", s, loc)) return tensor{this, -1};
    node n;
    n.kind = op::iota;
    n.type = t;
    n.out = s;
    iota_attrs{start, step}.store(n);
    return add(n, loc);
  }

  constexpr tensor fill(kiln::shape s, double v, dtype t, std::source_location loc = std::source_location::current()) {
    if (!ok()) return tensor{this, -1};
    if (!check_shape("fill", "", s, loc)) return tensor{this, -1};
    node n;
    n.kind = op::fill;
    n.type = t;
    n.out = s;
    immediate_attrs{v}.store(n);
    return add(n, loc);
  }

  constexpr void output(std::string_view name, tensor t, std::source_location loc = std::source_location::current()) {
    if (!ok() || !t.valid()) return;
    if (!check_name("output", name, loc)) return;
    for (auto& o : outputs)
      if (o.name.view() == name) {
        fail_with("output", loc, "'", name, "' is declared twice");
        return;
      }
    outputs.push_back({name_text(name), t.id});
  }

  // Names are stored in fixed-size text (the graph lives in constant evaluation): a longer name
  // is an error here, never a silent truncation that could merge two variables into one entry.
  constexpr bool check_name(std::string_view op_name, std::string_view name, const std::source_location& loc) {
    if (name.size() <= max_name_length) return true;
    fail_with(op_name, loc, "the name '", name.substr(0, 24), "...' has ", std::int64_t(name.size()), " characters; the limit is ",
              std::int64_t(max_name_length));
    return false;
  }
  constexpr bool check_shape(std::string_view op_name, std::string_view name, const kiln::shape& s, const std::source_location& loc) {
    if (s.rank <= max_rank) return true;
    if (name.empty()) fail_with(op_name, loc, "rank ", s.rank, " exceeds the maximum of ", max_rank);
    else fail_with(op_name, loc, "'", name, "': rank ", s.rank, " exceeds the maximum of ", max_rank);
    return false;
  }

  static constexpr std::string_view basename(std::string_view path) {
    auto slash = path.find_last_of('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
  }

  static constexpr void append_part(message_text& m, std::string_view s) { m.append(s); }
  static constexpr void append_part(message_text& m, const char* s) { m.append(std::string_view(s)); }
  static constexpr void append_part(message_text& m, std::int64_t v) { m.append(v); }
  static constexpr void append_part(message_text& m, int v) { m.append(std::int64_t(v)); }
  static constexpr void append_part(message_text& m, dtype d) { m.append(name_of(d)); }
  static constexpr void append_part(message_text& m, const kiln::shape& s) { append_shape(m, s); }
  static constexpr void append_location(message_text& m, const std::source_location& loc) {
    m.append(" (at ").append(basename(loc.file_name())).append(":").append(std::int64_t(loc.line())).append(")");
  }

 private:
  std::vector<std::uint64_t> hashes_;
  std::vector<int> table_;  // node index per slot, -1 when empty; size is a power of two
  std::vector<std::uint64_t> name_hashes_;  // of placeholders and variables, for find_named
  std::vector<int> named_;

  constexpr int find_same(const node& n, std::uint64_t h) const {
    if (table_.empty()) return -1;
    const std::size_t mask = table_.size() - 1;
    for (std::size_t slot = std::size_t(h) & mask; table_[slot] >= 0; slot = (slot + 1) & mask) {
      const int i = table_[slot];
      if (hashes_[std::size_t(i)] == h && nodes[std::size_t(i)].same_computation(n)) return i;
    }
    return -1;
  }
  constexpr tensor append(const node& n, std::uint64_t h) {
    nodes.push_back(n);
    hashes_.push_back(h);
    if (nodes.size() * 2 > table_.size()) rehash(table_.empty() ? 64 : table_.size() * 2);
    else insert(int(nodes.size()) - 1);
    return tensor{this, int(nodes.size()) - 1};
  }
  constexpr void insert(int i) {
    const std::size_t mask = table_.size() - 1;
    std::size_t slot = std::size_t(hashes_[std::size_t(i)]) & mask;
    while (table_[slot] >= 0) slot = (slot + 1) & mask;
    table_[slot] = i;
  }
  constexpr void rehash(std::size_t size) {
    table_.assign(size, -1);
    for (std::size_t i = 0; i < nodes.size(); ++i) insert(int(i));
  }
  static constexpr std::uint64_t hash_text(std::string_view s) {
    std::uint64_t h = 1469598103934665603ull;
    for (char c : s) h = (h ^ std::uint8_t(c)) * 1099511628211ull;
    return h;
  }
  constexpr int find_named(op kind, std::string_view name) const {
    const std::uint64_t h = hash_text(name);
    for (std::size_t j = 0; j < named_.size(); ++j) {
      const node& n = nodes[std::size_t(named_[j])];
      if (name_hashes_[j] == h && n.kind == kind && n.name.view() == name) return named_[j];
    }
    return -1;
  }
  constexpr tensor add_named(const node& n, const std::source_location& loc) {
    const tensor t = add(n, loc);
    if (t.id == int(nodes.size()) - 1) {
      named_.push_back(t.id);
      name_hashes_.push_back(hash_text(n.name.view()));
    }
    return t;
  }
  constexpr tensor add_variable(const node& n, const std::source_location& loc) {
    if (auto existing = find_named(op::variable, n.name.view()); existing >= 0) {
      if (const node& e = nodes[std::size_t(existing)]; !e.same_computation(n))
        return fail_with("variable", loc, "'", n.name.view(), "' declared twice with a different dtype, shape or initializer: ", e.type, " ",
                         e.out, " vs ", n.type, " ", n.out);
      return tensor{this, existing};
    }
    return add_named(n, loc);
  }
};

constexpr const node& tensor::info() const { return g->at(id); }

}  // namespace kiln
