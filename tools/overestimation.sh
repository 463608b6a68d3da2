#!/usr/bin/env bash
# The seed's noisy-reward experiment: DQN and Double DQN learn CartPole-v1 from a reward of
# 1 + N(0, NOISE) per step (the seed's RANDOM_REWARD_STD = 1.0) for a fixed budget of env steps,
# training on after a solve, so that every run gets the same number of updates. Then each run's
# greedy policy plays 10 episodes; the table puts the mean of max_a Q(s, a) over the states they
# visit next to the discounted return (gamma 0.99, the true reward of 1 per step) actually
# collected from those states (van Hasselt et al. 2016, fig. 3), one row per run and the medians
# per agent. eval is the greedy policy's mean (undiscounted) return over 100 episodes.
#
#   tools/overestimation.sh [BUILD_DIR] [AGENT ...]
#
# Default: build/, agents dqn and double_dqn. SEEDS="1 2 3", MAX_STEPS=100000 and NOISE=1 pick
# the seeds, the budget and the noise; NOISE=0 runs the noise-free control.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
agents=("$@")
if [[ ${#agents[@]} -eq 0 ]]; then agents=(dqn double_dqn); fi
seeds=${SEEDS:-"1 2 3"}
max_steps=${MAX_STEPS:-100000}
noise=${NOISE:-1}
exe="$dir/examples/cartpole"
if [[ ! -x "$exe" ]]; then
  [[ -f "$dir/build.ninja" ]] || meson setup "$dir" >/dev/null
  ninja -C "$dir" -j "${JOBS:-2}" examples/cartpole >/dev/null
fi

# median of the numbers on stdin, printed with the printf format $1
median() { sort -g | awk -v f="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = v[int((NR + 1) / 2)]; if (NR % 2 == 0) m = (m + v[NR / 2 + 1]) / 2; printf f "\n", m }'; }
field() { sed -n "s/^$1: //p" <<<"$2"; }

echo "CartPole-v1, reward 1 + N(0, $noise), $max_steps env steps per run"
printf '%-12s %6s %16s %23s %15s %8s\n' agent seed mean_q_estimate true_discounted_return overestimation eval
for agent in "${agents[@]}"; do
  qs="" truths="" overs="" evals=""
  for seed in $seeds; do
    out=$("$exe" --agent "$agent" --seed "$seed" --reward-noise "$noise" --max-steps "$max_steps" --keep-training \
      --value-every 0 --print-every 1000000000)
    q=$(field mean_q_estimate "$out") truth=$(field true_discounted_return "$out") over=$(field overestimation "$out")
    eval=$(field eval_mean_return "$out")
    printf '%-12s %6s %16s %23s %15s %8s\n' "$agent" "$seed" "$q" "$truth" "$over" "$eval"
    qs+="$q"$'\n' truths+="$truth"$'\n' overs+="$over"$'\n' evals+="$eval"$'\n'
  done
  printf '%-12s %6s %16s %23s %15s %8s\n' "$agent" median "$(printf '%s' "$qs" | median %.4f)" \
    "$(printf '%s' "$truths" | median %.4f)" "$(printf '%s' "$overs" | median %.4f)" "$(printf '%s' "$evals" | median %.2f)"
done
