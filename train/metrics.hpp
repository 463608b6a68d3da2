// Metrics with Keras semantics (tf.keras.metrics Mean, Sum, SparseCategoricalAccuracy,
// CategoricalAccuracy): update_state accumulates, result reads, reset_states zeroes.
//
// Two forms of each:
//   - in the graph, updated by the compiled step itself (the updates are assigns, so they always run):
//       g.output("loss", metrics::mean(g, "loss", loss));                        // running mean
//       g.output("acc", metrics::sparse_categorical_accuracy(g, "acc", y, logits));
//     State: the non-trainable f64 scalars `<name>/total` and `<name>/count` (Sum: `<name>/total`
//     only), zero-initialized. The returned tensor is the f64 result after this step's update.
//     From host code: metrics::result(exe.vars(), "acc"), metrics::reset(exe.vars(), "acc"),
//     metrics::reset_all(exe) (every metric of that executor's graph; fit does this per epoch).
//   - on the host, for values you hold: metrics::mean_metric m; m.update_state({2, 3, 4}); m.result().
//
// Keras semantics kept: Mean with sample weights is the weighted mean sum(w*v) / sum(w); a
// sample weight of shape [n] applies to each row of values [n, ...] (and [n, 1] weights to
// values [n]); the result of an empty metric (or of zero total weight) is 0 (divide_no_nan).
// Accuracy compares argmax(predictions) with the label; argmax takes the first maximum, so ties
// go to the lowest class index, as in Keras. Accumulators are doubles in both forms (Keras uses
// float32), so counts stay exact past 2^24 samples.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <ranges>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>
#include "../ops/elementwise.hpp"
#include "../ops/layout.hpp"
#include "../ops/reduce.hpp"
#include "../ops/state.hpp"
#include "../runtime/error.hpp"
#include "../runtime/variables.hpp"
#include "../runtime/view.hpp"

namespace kiln::metrics {

inline constexpr std::string_view total_suffix = "/total";
inline constexpr std::string_view count_suffix = "/count";
// A name plus its longest suffix must fit a node name.
inline constexpr std::size_t max_name_length = kiln::max_name_length - total_suffix.size();

namespace detail {

using kiln::detail::loc_t;
using kiln::detail::no_loc;

constexpr tensor invalid(graph& g) { return tensor{&g, -1}; }

constexpr bool check_tensor(graph& g, std::string_view op_name, std::string_view name, std::string_view role, const tensor& t,
                            const loc_t& loc) {
  if (!t.valid()) return false;  // an earlier error, already recorded
  if (t.g != &g) {
    g.fail_with(op_name, loc, "metric '", name, "': ", role, " belongs to another graph");
    return false;
  }
  return true;
}

struct state {
  tensor total, count;
};

// Declares the state variables, refusing a second update of the same metric in one graph (two
// assigns to one variable in one run would each see the old value and one would be lost).
constexpr bool declare_state(graph& g, std::string_view op_name, std::string_view name, bool with_count, const loc_t& loc, state& s) {
  if (!g.ok()) return false;
  if (name.empty() || name.size() > max_name_length) {
    g.fail_with(op_name, loc, "metric name '", name, "' must be 1 to ", std::int64_t(max_name_length),
                " characters (its state is '<name>/total')");
    return false;
  }
  name_text total_name(name);
  total_name.append(total_suffix);
  for (const node& n : g.nodes)
    if (n.kind == op::assign && g.at(n.in[0]).name == total_name) {
      g.fail_with(op_name, loc, "metric '", name, "' is already updated in this graph; give this one another name");
      return false;
    }
  // flag_metric_state lets fit() find a graph's metric state in the compiled program
  constexpr variable_flags state{.trainable = false, .metric_state = true};
  s.total = g.variable(total_name.view(), dtype::f64, {}, init::zeros(), state, loc);
  if (with_count) {
    name_text count_name(name);
    count_name.append(count_suffix);
    s.count = g.variable(count_name.view(), dtype::f64, {}, init::zeros(), state, loc);
  }
  return g.ok();
}

// Keras' squeeze_or_expand_dimensions + broadcast_weights: weights [n] on values [n, k] act per
// row; weights [n, 1] on values [n] are squeezed; otherwise numpy broadcasting onto the values'
// shape (the weights may not enlarge the values).
constexpr tensor align_weights(graph& g, std::string_view op_name, std::string_view name, tensor values, tensor weight, const loc_t& loc) {
  const dtype weight_type = weight.type(), value_type = values.type();
  const shape weight_shape = weight.shape();
  tensor w = cast(weight, dtype::f64, no_loc);
  const shape vs = values.shape();  // a copy: adding nodes moves the node array
  shape ws = w.shape();
  if (ws.rank == vs.rank + 1 && ws.dim[ws.rank - 1] == 1) {
    --ws.rank;
    w = reshape(w, ws, no_loc);
  } else if (ws.rank + 1 == vs.rank && ws.rank > 0) {
    w = expand_dims(w, -1, no_loc);
  }
  shape out;
  if (!broadcast_shapes(w.shape(), vs, out) || !(out == vs)) {
    g.fail_with(op_name, loc, "metric '", name, "': sample_weight ", weight_type, " ", weight_shape, " does not broadcast to the values ", value_type,
                " ", vs);
    return invalid(g);
  }
  return w;
}

// sum(v * w) and sum(w) over all elements (w = 1 without weights), in f64.
constexpr bool weighted_sums(graph& g, std::string_view op_name, std::string_view name, tensor values, tensor weight, const loc_t& loc,
                             tensor& total, tensor& count) {
  if (!check_tensor(g, op_name, name, "values", values, loc)) return false;
  const tensor v = cast(values, dtype::f64, no_loc);
  if (weight.g == nullptr) {
    total = reduce_sum(v, {}, false, no_loc);
    count = reduce_sum(ones_like(v, no_loc), {}, false, no_loc);
    return g.ok();
  }
  if (!check_tensor(g, op_name, name, "sample_weight", weight, loc)) return false;
  const tensor w = align_weights(g, op_name, name, values, weight, loc);
  if (!w.valid()) return false;
  total = reduce_sum(mul(v, w, no_loc), {}, false, no_loc);
  count = reduce_sum(mul(w, ones_like(v, no_loc), no_loc), {}, false, no_loc);
  return g.ok();
}

constexpr tensor divide_no_nan(tensor total, tensor count) {
  const tensor empty = equal(count, 0.0, no_loc);
  return where(empty, 0.0, div(total, where(empty, 1.0, count, no_loc), no_loc), no_loc);
}

constexpr tensor mean_of(graph& g, std::string_view op_name, std::string_view name, tensor values, tensor weight, const loc_t& loc) {
  tensor batch_total, batch_count;
  if (!weighted_sums(g, op_name, name, values, weight, loc, batch_total, batch_count)) return invalid(g);
  state s;
  if (!declare_state(g, op_name, name, true, loc, s)) return invalid(g);
  const tensor total = assign(s.total, add(s.total, batch_total, no_loc), loc);
  const tensor count = assign(s.count, add(s.count, batch_count, no_loc), loc);
  return divide_no_nan(total, count);
}

// argmax of the predictions' last axis against labels of the predictions' shape without it
// (labels [n, 1] are squeezed first, as Keras does), as a bool tensor of the labels' shape.
constexpr tensor sparse_matches(graph& g, std::string_view op_name, std::string_view name, tensor labels, tensor predictions,
                                const loc_t& loc) {
  if (!check_tensor(g, op_name, name, "labels", labels, loc) || !check_tensor(g, op_name, name, "predictions", predictions, loc))
    return invalid(g);
  const shape ps = predictions.shape();
  shape ls = labels.shape();
  if (ls.rank == ps.rank && ls.rank > 0 && ls.dim[ls.rank - 1] == 1) {
    --ls.rank;
    labels = reshape(labels, ls, no_loc);
  }
  bool same = ps.rank >= 1 && ls.rank == ps.rank - 1;
  for (int i = 0; same && i < ls.rank; ++i) same = ls.dim[i] == ps.dim[i];
  if (!same || !is_floating(predictions.type()))
    return g.fail_with(op_name, loc, "metric '", name, "': labels ", labels.type(), " ", labels.shape(), " need float predictions of shape ",
                       "labels + [classes], got ", predictions.type(), " ", ps);
  if (labels.type() == dtype::boolean)
    return g.fail_with(op_name, loc, "metric '", name, "': labels must be class indices (integer or float), got bool ", labels.shape());
  const tensor predicted = cast(argmax(predictions, -1, no_loc), labels.type(), no_loc);
  return equal(predicted, labels, no_loc);
}

}  // namespace detail

// ---- in the graph -------------------------------------------------------------------------------

// Keras Mean: the (weighted) mean of every value seen since the last reset.
constexpr tensor mean(graph& g, std::string_view name, tensor values, tensor sample_weight = {},
                      std::source_location loc = std::source_location::current()) {
  return detail::mean_of(g, "metrics::mean", name, values, sample_weight, loc);
}

// Keras Sum: the (weighted) sum of every value seen since the last reset.
constexpr tensor sum(graph& g, std::string_view name, tensor values, tensor sample_weight = {},
                     std::source_location loc = std::source_location::current()) {
  constexpr std::string_view op_name = "metrics::sum";
  tensor batch_total, batch_count;
  if (!detail::weighted_sums(g, op_name, name, values, sample_weight, loc, batch_total, batch_count)) return detail::invalid(g);
  detail::state s;
  if (!detail::declare_state(g, op_name, name, false, loc, s)) return detail::invalid(g);
  return assign(s.total, add(s.total, batch_total, detail::no_loc), loc);
}

// Keras SparseCategoricalAccuracy: labels are class indices ([n] or [n, 1]), predictions are
// logits or probabilities [n, classes] (argmax is the same for both).
constexpr tensor sparse_categorical_accuracy(graph& g, std::string_view name, tensor labels, tensor predictions, tensor sample_weight = {},
                                             std::source_location loc = std::source_location::current()) {
  constexpr std::string_view op_name = "metrics::sparse_categorical_accuracy";
  const tensor matches = detail::sparse_matches(g, op_name, name, labels, predictions, loc);
  if (!matches.valid()) return detail::invalid(g);
  return detail::mean_of(g, op_name, name, matches, sample_weight, loc);
}

// Keras CategoricalAccuracy: labels are one-hot (or any scores) of the predictions' shape.
constexpr tensor categorical_accuracy(graph& g, std::string_view name, tensor labels, tensor predictions, tensor sample_weight = {},
                                      std::source_location loc = std::source_location::current()) {
  constexpr std::string_view op_name = "metrics::categorical_accuracy";
  if (!detail::check_tensor(g, op_name, name, "labels", labels, loc) || !detail::check_tensor(g, op_name, name, "predictions", predictions, loc))
    return detail::invalid(g);
  if (!(labels.shape() == predictions.shape()) || labels.rank() < 1 || labels.type() == dtype::boolean || !is_floating(predictions.type()))
    return g.fail_with(op_name, loc, "metric '", name, "': labels ", labels.type(), " ", labels.shape(), " and predictions ", predictions.type(),
                       " ", predictions.shape(), " must have the same shape [..., classes], numeric labels and float predictions");
  const tensor matches = equal(argmax(labels, -1, detail::no_loc), argmax(predictions, -1, detail::no_loc), detail::no_loc);
  return detail::mean_of(g, op_name, name, matches, sample_weight, loc);
}

// ---- graph metric state from host code ----------------------------------------------------------

namespace detail {
inline variables::entry& state_entry(variables& store, std::string_view name, std::string_view suffix) {
  const std::string full = std::string(name) + std::string(suffix);
  variables::entry* e = store.find(full);
  if (!e) throw error("kiln: no metric '" + std::string(name) + "' in the variable store (no variable '" + full + "')");
  if (e->type != dtype::f64 || e->shape.rank != 0)
    throw error("kiln: variable '" + full + "' is " + std::string(name_of(e->type)) + " " + to_string(e->shape) +
                ", not the f64 scalar state of a metric");
  return *e;
}
inline double& value_of(variables::entry& e) { return *reinterpret_cast<double*>(e.data.data()); }
}  // namespace detail

// The metric's current result: total / count (0 when count is 0), or total for a Sum.
inline double result(variables& store, std::string_view name) {
  const double total = detail::value_of(detail::state_entry(store, name, total_suffix));
  if (!store.find(std::string(name) + std::string(count_suffix))) return total;
  const double count = detail::value_of(detail::state_entry(store, name, count_suffix));
  return count == 0 ? 0.0 : total / count;
}

// Keras reset_states: zeroes the metric's state in the store.
inline void reset(variables& store, std::string_view name) {
  detail::value_of(detail::state_entry(store, name, total_suffix)) = 0;
  if (variables::entry* count = store.find(std::string(name) + std::string(count_suffix))) detail::value_of(*count) = 0;
}

// Names of the metric state variables a compiled program declares (`<metric>/total`, `/count`).
template <class P> std::vector<std::string> state_variables() {
  std::vector<std::string> names;
  for (const node& n : P::nodes)
    if (n.kind == op::variable && n.has(flag_metric_state)) names.emplace_back(n.name.view());
  return names;
}

// Zeroes every metric of the executor's graph (its state lives in the executor's store).
template <class Exe>
  requires requires { typename Exe::program_type; }
void reset_all(Exe& exe) {
  for (const std::string& n : state_variables<typename Exe::program_type>())
    if (variables::entry* e = exe.vars().find(n)) detail::value_of(*e) = 0;
}

// ---- on the host ---------------------------------------------------------------------------------

template <class R>
concept numeric_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                        std::is_arithmetic_v<std::remove_cv_t<std::ranges::range_value_t<R>>>;

namespace detail {

// Sample weight of value i: one weight per value, or one per row of values.size() / weights.size().
template <class W> struct weights_of {
  W weights;
  std::size_t per_weight = 1;
  double operator()(std::size_t i) const {
    if (weights.empty()) return 1.0;
    return double(weights[i / per_weight]);
  }
};
template <class W> weights_of<W> check_weights(W w, std::size_t n, const char* metric) {
  weights_of<W> r{w, 1};
  if (w.empty()) return r;
  if (n % w.size() != 0)
    throw error(std::string("kiln: ") + metric + ": " + std::to_string(w.size()) + " sample weights for " + std::to_string(n) +
                " values; give one per value or one per row");
  r.per_weight = n / w.size();
  return r;
}
template <class R> auto span_of(const R& r) {
  return std::span<const std::remove_cv_t<std::ranges::range_value_t<R>>>(std::ranges::data(r), std::ranges::size(r));
}

// argmax with the first maximum winning (Keras/NumPy); NaN never wins.
template <class T> std::size_t first_argmax(const T* row, std::size_t n) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < n; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

// Shared by Mean and Sum: sum(w * v) and sum(w).
class accumulator {
 public:
  void add(double value, double weight = 1.0) {
    total_ += value * weight;
    count_ += weight;
  }
  template <numeric_range V> void add_all(const V& values, const char* metric) { add_all(values, std::span<const double>{}, metric); }
  template <numeric_range V, numeric_range W> void add_all(const V& values, const W& weights, const char* metric) {
    const auto v = span_of(values);
    const auto w = check_weights(span_of(weights), v.size(), metric);
    for (std::size_t i = 0; i < v.size(); ++i) add(double(v[i]), w(i));
  }
  void reset() { total_ = count_ = 0; }
  double total() const { return total_; }
  double count() const { return count_; }

 private:
  double total_ = 0, count_ = 0;
};

}  // namespace detail

// Keras Mean.
class mean_metric {
 public:
  void update_state(double value, double sample_weight = 1.0) { acc_.add(value, sample_weight); }
  void update_state(std::initializer_list<double> values) { acc_.add_all(std::span<const double>(values.begin(), values.size()), "mean"); }
  template <numeric_range V> void update_state(const V& values) { acc_.add_all(values, "mean"); }
  template <numeric_range V, numeric_range W> void update_state(const V& values, const W& sample_weight) {
    acc_.add_all(values, sample_weight, "mean");
  }
  double result() const { return acc_.count() == 0 ? 0.0 : acc_.total() / acc_.count(); }
  void reset_states() { acc_.reset(); }
  double total() const { return acc_.total(); }
  double count() const { return acc_.count(); }

 private:
  detail::accumulator acc_;
};

// Keras Sum.
class sum_metric {
 public:
  void update_state(double value, double sample_weight = 1.0) { acc_.add(value, sample_weight); }
  void update_state(std::initializer_list<double> values) { acc_.add_all(std::span<const double>(values.begin(), values.size()), "sum"); }
  template <numeric_range V> void update_state(const V& values) { acc_.add_all(values, "sum"); }
  template <numeric_range V, numeric_range W> void update_state(const V& values, const W& sample_weight) {
    acc_.add_all(values, sample_weight, "sum");
  }
  double result() const { return acc_.total(); }
  void reset_states() { acc_.reset(); }

 private:
  detail::accumulator acc_;
};

// Keras SparseCategoricalAccuracy: `labels` holds n class indices, `predictions` n rows of
// classes scores (row-major, so classes = predictions.size() / n).
class sparse_categorical_accuracy_metric {
 public:
  template <numeric_range L, numeric_range P> void update_state(const L& labels, const P& predictions) {
    update_state(labels, predictions, std::span<const double>{});
  }
  template <numeric_range L, numeric_range P, numeric_range W> void update_state(const L& labels, const P& predictions, const W& sample_weight) {
    const auto l = detail::span_of(labels);
    const auto p = detail::span_of(predictions);
    if (l.empty()) {
      if (!p.empty()) throw error("kiln: sparse_categorical_accuracy: " + std::to_string(p.size()) + " predictions for 0 labels");
      return;
    }
    if (p.size() % l.size() != 0 || p.empty())
      throw error("kiln: sparse_categorical_accuracy: " + std::to_string(p.size()) + " prediction values are not rows of classes for " +
                  std::to_string(l.size()) + " labels");
    const std::size_t classes = p.size() / l.size();
    const auto w = detail::check_weights(detail::span_of(sample_weight), l.size(), "sparse_categorical_accuracy");
    for (std::size_t i = 0; i < l.size(); ++i) {
      const auto predicted = detail::first_argmax(p.data() + i * classes, classes);
      acc_.add(double(predicted) == double(l[i]) ? 1.0 : 0.0, w(i));
    }
  }
  double result() const { return acc_.count() == 0 ? 0.0 : acc_.total() / acc_.count(); }
  void reset_states() { acc_.reset(); }

 private:
  detail::accumulator acc_;
};

// Keras CategoricalAccuracy: `labels` and `predictions` both hold rows of `classes` values.
class categorical_accuracy_metric {
 public:
  template <numeric_range L, numeric_range P> void update_state(const L& labels, const P& predictions, std::int64_t classes) {
    update_state(labels, predictions, classes, std::span<const double>{});
  }
  template <numeric_range L, numeric_range P, numeric_range W>
  void update_state(const L& labels, const P& predictions, std::int64_t classes, const W& sample_weight) {
    const auto l = detail::span_of(labels);
    const auto p = detail::span_of(predictions);
    if (classes <= 0 || l.size() != p.size() || l.size() % std::size_t(classes) != 0)
      throw error("kiln: categorical_accuracy: " + std::to_string(l.size()) + " label values and " + std::to_string(p.size()) +
                  " prediction values are not the same rows of " + std::to_string(classes) + " classes");
    const std::size_t c = std::size_t(classes), rows = l.size() / c;
    const auto w = detail::check_weights(detail::span_of(sample_weight), rows, "categorical_accuracy");
    for (std::size_t i = 0; i < rows; ++i)
      acc_.add(detail::first_argmax(l.data() + i * c, c) == detail::first_argmax(p.data() + i * c, c) ? 1.0 : 0.0, w(i));
  }
  double result() const { return acc_.count() == 0 ? 0.0 : acc_.total() / acc_.count(); }
  void reset_states() { acc_.reset(); }

 private:
  detail::accumulator acc_;
};

}  // namespace kiln::metrics
