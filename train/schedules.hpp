// Learning-rate schedules: a learning rate is a function of the optimizer's iteration counter,
// built as scalar graph nodes inside the train step (so a decayed rate costs no host round trip).
// The formulas are those of tf.keras.optimizers.schedules, with `step` = the number of updates
// already applied (0 on the first update), exactly as Keras calls `learning_rate(iterations)`.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <numbers>
#include <source_location>
#include "../ops/elementwise.hpp"
#include "../ops/layout.hpp"

namespace kiln {

enum class schedule_kind : std::uint8_t { constant, exponential_decay, inverse_time_decay, polynomial_decay, cosine_decay, piecewise_constant, variable };

constexpr std::string_view name_of(schedule_kind k) {
  switch (k) {
    case schedule_kind::constant: return "constant";
    case schedule_kind::exponential_decay: return "exponential_decay";
    case schedule_kind::inverse_time_decay: return "inverse_time_decay";
    case schedule_kind::polynomial_decay: return "polynomial_decay";
    case schedule_kind::cosine_decay: return "cosine_decay";
    case schedule_kind::piecewise_constant: return "piecewise_constant";
    case schedule_kind::variable: return "variable";
  }
  return "?";
}

// Schedules live inside optimizer structs, which live inside constexpr models: a fixed-size value,
// so piecewise_constant has a fixed maximum number of boundaries.
inline constexpr int max_schedule_boundaries = 16;

namespace detail {

// sin(u) for u in [0, pi/2] as scalar graph nodes: kiln has no trigonometric op, and a schedule
// needs one value per step. Taylor terms up to u^21 (truncation below 2e-18 on the interval),
// evaluated by Horner in u^2, so the relative error stays near one ulp even for tiny u.
constexpr tensor sin_quarter_turn(tensor u) {
  constexpr int terms = 11;
  std::array<double, terms> c{};  // (-1)^k / (2k+1)!
  double factorial = 1;
  for (int k = 0; k < terms; ++k) {
    if (k > 0) factorial *= double(2 * k) * double(2 * k + 1);
    c[std::size_t(k)] = (k % 2 ? -1.0 : 1.0) / factorial;
  }
  tensor u2 = mul(u, u, no_loc);
  tensor p = add(mul(u2, c[terms - 1], no_loc), c[terms - 2], no_loc);
  for (int k = terms - 3; k >= 0; --k) p = add(mul(p, u2, no_loc), c[std::size_t(k)], no_loc);
  return mul(u, p, no_loc);
}

// floor(x) for x >= 0 (steps are never negative): casting to an integer truncates toward zero.
constexpr tensor floor_nonnegative(tensor x) { return cast(cast(x, dtype::i64, no_loc), x.type(), no_loc); }

}  // namespace detail

struct schedule {
  schedule_kind kind = schedule_kind::constant;
  double initial = 0;  // the constant value, or the rate at step 0 of a decay
  double decay_steps = 1, decay_rate = 0, end = 0, power = 1, alpha = 0;
  bool staircase = false;
  double warmup_steps = 0;
  int boundary_count = 0;
  std::array<double, max_schedule_boundaries> boundaries{};
  std::array<double, max_schedule_boundaries + 1> values{};
  fixed_text<64> variable_name{};  // kind variable: the f64 scalar variable holding the rate
  // A bad argument cannot fail a graph that does not exist yet: it is kept here and reported
  // (with the place the schedule was made) when the train step is built.
  fixed_text<160> error{};
  std::source_location origin{};

  constexpr schedule() = default;
  constexpr schedule(double constant_value) : initial(constant_value) {}

  constexpr bool is_constant() const { return kind == schedule_kind::constant && warmup_steps == 0; }

  // Reports a construction error into g (once); false when there is one.
  constexpr bool check(graph& g) const {
    if (error.empty()) return true;
    g.fail_with(name_of(kind), origin, error.view());
    return false;
  }

  // The rate at `step` (a scalar of any numeric dtype: updates already applied), as an f64 scalar.
  constexpr tensor at(tensor step, std::source_location loc = std::source_location::current()) const {
    if (!step.valid()) return detail::invalid_of(step);
    graph& g = *step.g;
    if (!check(g)) return detail::invalid_of(step);
    if (step.rank() != 0 || !is_numeric(step.type()))
      return g.fail_with("schedule", loc, "the step must be a numeric scalar, got ", step.type(), " ", step.shape());
    tensor s = cast(step, dtype::f64, detail::no_loc);
    if (warmup_steps <= 0) return decayed(s);
    // Linear warmup from 0 to the rate the decay starts with; the decay then sees the step count
    // shifted by warmup_steps (optax's warmup + join_schedules, transformers' get_*_with_warmup).
    tensor ramp = mul(div(s, warmup_steps, detail::no_loc), value_at_zero(), detail::no_loc);
    tensor after = decayed(maximum(sub(s, warmup_steps, detail::no_loc), 0.0, detail::no_loc));
    return where(less(s, warmup_steps, detail::no_loc), ramp, after, detail::no_loc);
  }

  // The decay at step 0, known at compile time (the peak a warmup ramps up to).
  constexpr double value_at_zero() const {
    switch (kind) {
      case schedule_kind::piecewise_constant:
        for (int i = 0; i < boundary_count; ++i)
          if (0 <= boundaries[std::size_t(i)]) return values[std::size_t(i)];
        return values[std::size_t(boundary_count)];
      default: return initial;  // every decay formula equals `initial` at step 0
    }
  }

 private:
  constexpr tensor decayed(tensor s) const {
    using detail::no_loc;
    graph& g = *s.g;
    switch (kind) {
      case schedule_kind::constant: return g.scalar(initial, dtype::f64, no_loc);
      case schedule_kind::exponential_decay: {  // initial * rate^(step / decay_steps)
        tensor p = div(s, decay_steps, no_loc);
        if (staircase) p = detail::floor_nonnegative(p);
        return mul(pow(decay_rate, p, no_loc), initial, no_loc);
      }
      case schedule_kind::inverse_time_decay: {  // initial / (1 + rate * step / decay_steps)
        tensor p = div(s, decay_steps, no_loc);
        if (staircase) p = detail::floor_nonnegative(p);
        return div(initial, add(mul(p, decay_rate, no_loc), 1.0, no_loc), no_loc);
      }
      case schedule_kind::polynomial_decay: {  // (initial - end) * (1 - min(step, d) / d)^power + end
        tensor p = div(minimum(s, decay_steps, no_loc), decay_steps, no_loc);
        tensor left = sub(1.0, p, no_loc);
        if (power != 1) left = pow(left, power, no_loc);
        return add(mul(left, initial - end, no_loc), end, no_loc);
      }
      case schedule_kind::cosine_decay: {
        // initial * ((1 - alpha) * 0.5 * (1 + cos(pi * f)) + alpha), f = min(step, d) / d, using
        // 0.5 * (1 + cos(pi f)) = sin^2(pi/2 (1 - f)): exact 0 at the end of the decay.
        tensor f = div(minimum(s, decay_steps, no_loc), decay_steps, no_loc);
        tensor u = mul(sub(1.0, f, no_loc), std::numbers::pi / 2, no_loc);
        tensor half_cos = square(detail::sin_quarter_turn(u), no_loc);
        return mul(add(mul(half_cos, 1 - alpha, no_loc), alpha, no_loc), initial, no_loc);
      }
      case schedule_kind::variable:  // whatever the host last wrote, `initial` until then
        return g.variable(variable_name.view(), dtype::f64, {}, init::constant(initial), false, no_loc);
      case schedule_kind::piecewise_constant: {  // values[i] while step <= boundaries[i]
        tensor r = g.scalar(values[std::size_t(boundary_count)], dtype::f64, no_loc);
        for (int i = boundary_count - 1; i >= 0; --i)
          r = where(less_equal(s, boundaries[std::size_t(i)], no_loc), values[std::size_t(i)], r, no_loc);
        return r;
      }
    }
    return g.scalar(initial, dtype::f64, no_loc);
  }
};

namespace detail {
constexpr schedule make_schedule(schedule_kind kind, double initial, double decay_steps, const std::source_location& loc) {
  schedule s;
  s.kind = kind;
  s.initial = initial;
  s.decay_steps = decay_steps;
  s.origin = loc;
  if (!(decay_steps > 0)) s.error.append("decay_steps must be positive");
  return s;
}
}  // namespace detail

namespace schedules {

// initial * decay_rate^(step / decay_steps); the exponent is floored with staircase.
constexpr schedule exponential_decay(double initial, double decay_steps, double decay_rate, bool staircase = false,
                                     std::source_location loc = std::source_location::current()) {
  schedule s = detail::make_schedule(schedule_kind::exponential_decay, initial, decay_steps, loc);
  s.decay_rate = decay_rate;
  s.staircase = staircase;
  if (s.error.empty() && !(decay_rate > 0)) s.error.append("decay_rate must be positive");
  return s;
}

// initial / (1 + decay_rate * step / decay_steps); the quotient is floored with staircase.
constexpr schedule inverse_time_decay(double initial, double decay_steps, double decay_rate, bool staircase = false,
                                      std::source_location loc = std::source_location::current()) {
  schedule s = detail::make_schedule(schedule_kind::inverse_time_decay, initial, decay_steps, loc);
  s.decay_rate = decay_rate;
  s.staircase = staircase;
  if (s.error.empty() && decay_rate < 0) s.error.append("decay_rate must not be negative");
  return s;
}

// (initial - end) * (1 - min(step, decay_steps) / decay_steps)^power + end (Keras' default end
// is 1e-4; cycle=True is not offered).
constexpr schedule polynomial_decay(double initial, double decay_steps, double end = 0.0001, double power = 1.0,
                                    std::source_location loc = std::source_location::current()) {
  schedule s = detail::make_schedule(schedule_kind::polynomial_decay, initial, decay_steps, loc);
  s.end = end;
  s.power = power;
  if (s.error.empty() && !(power > 0)) s.error.append("power must be positive");
  return s;
}

// initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha).
constexpr schedule cosine_decay(double initial, double decay_steps, double alpha = 0.0,
                                std::source_location loc = std::source_location::current()) {
  schedule s = detail::make_schedule(schedule_kind::cosine_decay, initial, decay_steps, loc);
  s.alpha = alpha;
  return s;
}

// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
// values[n] after boundaries[n-1]. Needs n + 1 values for n increasing boundaries (n <= 16).
constexpr schedule piecewise_constant(std::initializer_list<double> boundaries, std::initializer_list<double> values,
                                      std::source_location loc = std::source_location::current()) {
  schedule s;
  s.kind = schedule_kind::piecewise_constant;
  s.origin = loc;
  const auto n = std::int64_t(boundaries.size());
  if (n > max_schedule_boundaries) {
    s.error.append(n).append(" boundaries, at most ").append(std::int64_t(max_schedule_boundaries));
    return s;
  }
  if (std::int64_t(values.size()) != n + 1) {
    s.error.append(n).append(" boundaries need ").append(n + 1).append(" values, got ").append(std::int64_t(values.size()));
    return s;
  }
  s.boundary_count = int(n);
  int i = 0;
  for (double b : boundaries) {
    if (i > 0 && !(b > s.boundaries[std::size_t(i - 1)])) s.error.append("boundaries must be strictly increasing");
    s.boundaries[std::size_t(i++)] = b;
    if (!s.error.empty()) return s;
  }
  i = 0;
  for (double v : values) s.values[std::size_t(i++)] = v;
  s.initial = s.values[0];
  return s;
}

// The rate is the non-trainable f64 scalar variable `name` (created with the value `initial`),
// which the host sets between steps: Keras' `optimizer.learning_rate.assign(x)`, and what
// callbacks::learning_rate_scheduler (train/fit.hpp) does from a function of the step. Use it
// when the decay depends on run-time facts such as the number of epochs: the compiled step stays
// the same. Optimizers (or parameter groups) naming the same variable share it; it is saved in
// checkpoints with the other variables.
constexpr schedule variable(double initial, std::string_view name = "learning_rate",
                            std::source_location loc = std::source_location::current()) {
  schedule s;
  s.kind = schedule_kind::variable;
  s.initial = initial;
  s.origin = loc;
  if (name.empty() || name.size() > 63) {
    s.error.append("the variable's name must have 1 to 63 characters");
    return s;
  }
  s.variable_name.append(name);
  return s;
}

// Ramps linearly from 0 (at step 0) to after's initial rate over warmup_steps, then follows
// `after` with its step count shifted by warmup_steps.
constexpr schedule linear_warmup(schedule after, double warmup_steps, std::source_location loc = std::source_location::current()) {
  if (!after.error.empty()) return after;
  after.warmup_steps = warmup_steps;
  if (!(warmup_steps > 0)) {
    after.origin = loc;
    after.error.append("linear_warmup: warmup_steps must be positive");
  }
  return after;
}

}  // namespace schedules

}  // namespace kiln
