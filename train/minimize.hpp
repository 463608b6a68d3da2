// minimize(): the train step as graph nodes (Keras optimizer.minimize / TF1 Optimizer.minimize).
//
//   tensor step = minimize(adam{.learning_rate = 1e-3}, loss);          // every trainable variable
//   tensor step = minimize(sgd{.momentum = 0.9}, loss, {w1, b1});        // only these
//   tensor step = minimize(loss, param_group{adam{.learning_rate = 1e-4}, {embedding}},
//                                param_group{adam{}, {}, normalize_layers{}});  // {}: all the others
//   g.output("step", step);  // the iteration counter after the update (the updates always run)
//
// Semantics:
// - The loss must be an f32/f64 scalar. Gradients are computed once, by one gradients() call over
//   the variables of every group, so forward and backward are planned and fused together.
// - A group's variable list names variables; listing a tensor that is not a variable, or a
//   variable twice (in one group or across groups) is a graph error naming it. Non-trainable
//   variables (g.variable(..., /*trainable=*/false)) are skipped even when listed. An empty list
//   means every trainable f32/f64 variable not listed by another group (at most one such group).
// - A variable the loss does not depend on would have a zero gradient forever: a selected
//   variable (listed, or trainable and picked by an empty list) that receives no gradient is a
//   graph error naming it, unless its group says `unused_variables::skip`; skipped variables get no
//   slot variables. If that leaves nothing to update, it is a graph error (Keras: "No gradients
//   provided for any variable").
// - Per group, in order: the group's gradient transform (hook), then the optimizer's clipping,
//   then its update. The hook runs first so the clip limits hold for what is applied.
// - One iteration counter per minimize call: the non-trainable i64 scalar `<name>/iterations`
//   (name: the optimizers' `name` field, "optimizer" by default; two minimize calls in one graph
//   need different names). Schedules see its value before the update (0 on the first step);
//   Adam's bias correction uses t = iterations + 1. minimize returns the assign that increments it.
// - Slot variables are `<variable name>/<slot>`: zero-initialized (Adagrad's accumulator:
//   initial_accumulator_value) and non-trainable, so they sit in the variable store.
// - Everything is assign nodes with elementwise values: the executor allocates nothing per step.
#pragma once
#include <concepts>
#include <initializer_list>
#include <span>
#include <vector>
#include "../ops/gradients.hpp"
#include "../ops/state.hpp"
#include "clipping.hpp"
#include "optimizers.hpp"
#include "schedules.hpp"

namespace kiln {

// A gradient transform (hook) sees the gradients of a group's updated variables and may replace
// them with new tensors of the same dtype and shape; it may create its own state variables and
// assigns. It runs before clipping.
template <class H>
concept gradient_transform = std::invocable<const H&, graph&, std::span<tensor>, std::span<const tensor>>;

struct no_transform {
  constexpr void operator()(graph&, std::span<tensor>, std::span<const tensor>) const {}
};

// What minimize does with a selected variable the loss does not depend on (no gradient reaches it).
enum class unused_variables : std::uint8_t {
  error,  // a graph error naming the variable (a forgotten connection is the usual cause)
  skip,   // leave it alone (a shared store whose other variables this loss does not train)
};

template <optimizer_type Opt, gradient_transform Hook = no_transform>
struct param_group {
  Opt optimizer;
  std::vector<tensor> variables{};  // empty: every trainable variable no other group lists
  Hook transform{};
  unused_variables unused = unused_variables::error;
};
template <class Opt> param_group(Opt, std::initializer_list<tensor>) -> param_group<Opt>;
template <class Opt, class Hook> param_group(Opt, std::initializer_list<tensor>, Hook, unused_variables) -> param_group<Opt, Hook>;
template <class Opt, class Hook> param_group(Opt, std::vector<tensor>, Hook, unused_variables) -> param_group<Opt, Hook>;
template <class Opt, class Hook> param_group(Opt, std::initializer_list<tensor>, Hook) -> param_group<Opt, Hook>;
template <class Opt> param_group(Opt, std::vector<tensor>) -> param_group<Opt>;
template <class Opt, class Hook> param_group(Opt, std::vector<tensor>, Hook) -> param_group<Opt, Hook>;

template <class T> inline constexpr bool is_param_group = false;
template <class O, class H> inline constexpr bool is_param_group<param_group<O, H>> = true;

namespace train_detail {

// The loss, with the place minimize was called from: a variadic function cannot take a defaulted
// source_location after its pack, but the implicit conversion of its first argument can.
struct loss_at {
  tensor loss;
  std::source_location loc;
  constexpr loss_at(tensor t, std::source_location l = std::source_location::current()) : loss(t), loc(l) {}
};

inline constexpr std::string_view default_name = "optimizer";

struct selection {
  std::vector<tensor> vars;        // the variables to update, each once
  std::vector<int> group;          // the group of each
  std::vector<int> listed;         // every listed variable node (trainable or not), for duplicates
  int rest_group = -1;             // the group with an empty list
};

constexpr bool select_listed(graph& g, selection& s, std::span<const tensor> listed, int group, const std::source_location& loc) {
  for (std::size_t j = 0; j < listed.size(); ++j) {
    const tensor t = listed[j];
    if (!t.valid()) {
      if (g.ok()) g.fail_with("minimize", loc, "param group #", int(group), ", variable #", std::int64_t(j), " is not a valid tensor");
      return false;
    }
    if (t.g != &g) {
      g.fail_with("minimize", loc, "param group #", int(group), ", variable #", std::int64_t(j), " belongs to another graph than the loss");
      return false;
    }
    const node n = t.info();
    if (n.kind != op::variable) {
      g.fail_with("minimize", loc, "param group #", int(group), ", entry #", std::int64_t(j), " is a ", name_of(n.kind), " ", n.type, " ",
                  n.out, ", not a variable (declared at ", graph::basename(n.file), ":", int(n.line), ")");
      return false;
    }
    for (int id : s.listed)
      if (id == t.id) {
        g.fail_with("minimize", loc, "variable '", n.name.view(), "' is listed twice");
        return false;
      }
    s.listed.push_back(t.id);
    if (!n.has(flag_trainable)) continue;  // non-trainable: skipped even when listed
    if (!is_floating(n.type)) {
      g.fail_with("minimize", loc, "variable '", n.name.view(), "' is ", n.type, " ", n.out,
                  "; only f32 and f64 variables can be trained (declare it with trainable = false)");
      return false;
    }
    s.vars.push_back(t);
    s.group.push_back(group);
  }
  return true;
}

constexpr void select_rest(graph& g, selection& s, int loss_id) {
  for (int i = 0; i < loss_id; ++i) {
    const node& n = g.at(i);
    if (n.kind != op::variable || !n.has(flag_trainable) || !is_floating(n.type)) continue;
    bool listed = false;
    for (int id : s.listed) listed = listed || id == i;
    if (listed) continue;
    s.vars.push_back(tensor{&g, i});
    s.group.push_back(s.rest_group);
  }
}

constexpr bool is_structural_zero(const node& n) { return n.kind == op::fill && immediate_attrs::of(n).value == 0; }

template <class O, class H>
constexpr void apply_group(const param_group<O, H>& pg, int index, const selection& s, const std::vector<tensor>& grads,
                           const update_context& c) {
  graph& g = *c.g;
  if (!g.ok()) return;
  std::vector<tensor> vars, gs;
  for (std::size_t j = 0; j < s.vars.size(); ++j)
    if (s.group[j] == index && grads[j].valid()) {
      vars.push_back(s.vars[j]);
      gs.push_back(grads[j]);
    }
  if (vars.empty()) return;
  pg.transform(g, std::span<tensor>(gs), std::span<const tensor>(vars));
  if (!g.ok()) return;
  for (std::size_t j = 0; j < vars.size(); ++j) {
    const node v = vars[j].info();
    if (!gs[j].valid() || gs[j].g != &g || gs[j].type() != v.type || !(gs[j].shape() == v.out)) {
      if (gs[j].valid() && gs[j].g == &g)
        g.fail_with("minimize", c.loc, "the gradient transform of param group #", index, " returned ", gs[j].type(), " ", gs[j].shape(),
                    " for variable '", v.name.view(), "' ", v.type, " ", v.out);
      else
        g.fail_with("minimize", c.loc, "the gradient transform of param group #", index, " returned an invalid tensor for variable '",
                    v.name.view(), "'");
      return;
    }
  }
  detail::apply_clipping(std::span<tensor>(gs), clip_options_of(pg.optimizer), c.loc);
  for (std::size_t j = 0; j < vars.size() && g.ok(); ++j) update(pg.optimizer, c, vars[j], gs[j]);
}

template <class... Groups>
constexpr tensor minimize(tensor loss, const std::source_location& loc, const Groups&... groups) {
  if (!loss.valid()) return loss;
  graph& g = *loss.g;
  if (!g.ok()) return detail::invalid_of(loss);
  if (!is_floating(loss.type()) || loss.rank() != 0)
    return g.fail_with("minimize", loc, "the loss must be an f32 or f64 scalar, got ", loss.type(), " ", loss.shape(),
                       loss.rank() != 0 ? "; reduce it first (reduce_mean)" : "");

  // The counter's name: the one name the optimizers agree on beyond the default.
  std::string_view name = default_name;
  bool conflict = false;
  auto take_name = [&](std::string_view n) {
    if (n == default_name) return;
    if (name != default_name && name != n) conflict = true;
    name = n;
  };
  (take_name(groups.optimizer.name), ...);
  if (conflict) return g.fail_with("minimize", loc, "the param groups' optimizers have different names; one minimize call has one iteration counter");
  constexpr std::string_view counter_suffix = "/iterations";
  if (name.empty() || name.size() + counter_suffix.size() > sizeof(name_text{}.text) - 1)
    return g.fail_with("minimize", loc, "the optimizer name '", name, "' must be 1 to ", std::int64_t(sizeof(name_text{}.text) - 1 - counter_suffix.size()),
                       " characters");

  bool configured = true;
  ((configured = configured && check(groups.optimizer, g, loc)), ...);
  if (!configured) return detail::invalid_of(loss);

  selection s;
  int index = 0;
  bool listed_ok = true;
  auto list = [&](const auto& pg) {
    if (pg.variables.empty()) {
      if (s.rest_group >= 0 && listed_ok) {
        g.fail_with("minimize", loc, "param groups #", s.rest_group, " and #", index, " both have an empty variable list (= all the others)");
        listed_ok = false;
      }
      s.rest_group = index;
    } else if (listed_ok) {
      listed_ok = select_listed(g, s, std::span<const tensor>(pg.variables.data(), pg.variables.size()), index, loc);
    }
    ++index;
  };
  (list(groups), ...);
  if (!listed_ok) return detail::invalid_of(loss);
  if (s.rest_group >= 0) select_rest(g, s, loss.id);

  if (s.vars.empty())
    return g.fail_with("minimize", loc, "there is no trainable f32 or f64 variable to update (non-trainable ones are skipped)");
  std::vector<tensor> grads(s.vars.size());
  grad_detail::backward(loss, s.vars.data(), s.vars.size(), tensor{}, grads.data(), loc);
  if (!g.ok()) return detail::invalid_of(loss);
  std::vector<unused_variables> policy;
  (policy.push_back(groups.unused), ...);
  int updated = 0;
  for (std::size_t j = 0; j < grads.size(); ++j) {
    tensor& d = grads[j];
    if (!is_structural_zero(d.info())) {
      ++updated;
      continue;
    }
    d = tensor{&g, -1};
    if (policy[std::size_t(s.group[j])] == unused_variables::error) {
      const node v = s.vars[j].info();
      return g.fail_with("minimize", loc, "variable '", v.name.view(), "' ", v.type, " ", v.out, " (declared at ", graph::basename(v.file), ":",
                         int(v.line), ") receives no gradient: the loss does not depend on it. Connect it, declare it with trainable = "
                         "false, or pass unused_variables::skip");
    }
  }
  if (updated == 0)
    return g.fail_with("minimize", loc, "the loss depends on none of the ", std::int64_t(s.vars.size()),
                       " trainable variables to update (no gradient for any of them)");

  name_text counter_name(name);
  counter_name.append(counter_suffix);
  for (const node& n : g.nodes)
    if (n.kind == op::assign && g.at(n.in[0]).name == counter_name)
      return g.fail_with("minimize", loc, "'", counter_name.view(),
                         "' is already incremented by another minimize call; give this one's optimizer another name (.name = ...)");
  tensor iterations = g.variable(counter_name.view(), dtype::i64, {}, init::zeros(), false, loc);
  const update_context c{&g, iterations, cast(iterations, dtype::f64, no_loc), loc};

  index = 0;
  ((apply_group(groups, index++, s, grads, c)), ...);
  if (!g.ok()) return detail::invalid_of(loss);
  // + fill(1) rather than + 1: a node distinct from the iterations + 1 of Adam's bias correction,
  // which would otherwise be shared and need a loop of its own.
  return assign(iterations, add(iterations, g.fill({}, 1, dtype::i64, no_loc), no_loc), loc);
}

}  // namespace train_detail

// One optimizer for `vars` ({} = every trainable f32/f64 variable). Returns the incremented
// iteration counter.
template <optimizer_type Opt>
constexpr tensor minimize(const Opt& opt, tensor loss, std::initializer_list<tensor> vars = {},
                          std::source_location loc = std::source_location::current()) {
  return train_detail::minimize(loss, loc, param_group<Opt>{opt, std::vector<tensor>(vars)});
}
template <optimizer_type Opt>
constexpr tensor minimize(const Opt& opt, tensor loss, std::initializer_list<tensor> vars, unused_variables unused,
                          std::source_location loc = std::source_location::current()) {
  return train_detail::minimize(loss, loc, param_group<Opt>{opt, std::vector<tensor>(vars), no_transform{}, unused});
}
template <optimizer_type Opt>
constexpr tensor minimize(const Opt& opt, tensor loss, std::span<const tensor> vars, std::source_location loc = std::source_location::current()) {
  return train_detail::minimize(loss, loc, param_group<Opt>{opt, std::vector<tensor>(vars.begin(), vars.end())});
}

// Several param groups, each with its optimizer (learning rate, clipping...) and gradient transform.
template <class... Groups>
  requires(sizeof...(Groups) > 0 && (is_param_group<Groups> && ...))
constexpr tensor minimize(train_detail::loss_at loss, const Groups&... groups) {
  return train_detail::minimize(loss.loss, loss.loc, groups...);
}

}  // namespace kiln
