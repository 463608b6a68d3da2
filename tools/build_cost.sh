#!/usr/bin/env bash
# Compile cost of every test, example and benchmark translation unit, one at a time.
#
#   tools/build_cost.sh [BUILD_DIR] [-- extra meson setup options]
#
# Configures a fresh build dir (default build-cost/, deleted first) at -O2, then compiles each
# TU from its compile_commands.json entry alone under /usr/bin/time, and prints
#   TU  seconds  peak_MB
# flagging any TU over 60 s or 2048 MB. Exits 1 if any TU is over a limit, 2 if one fails to
# compile. Limits can be changed with MAX_SECONDS and MAX_MB in the environment; ONLY=REGEX
# keeps only the TUs whose path matches (e.g. ONLY=bench/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${1:-build-cost}
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift
max_s=${MAX_SECONDS:-60}
max_mb=${MAX_MB:-2048}

if [[ ! -x /usr/bin/time ]]; then
  echo "build_cost: /usr/bin/time is missing; installing the 'time' package" >&2
  apt-get install -y time >/dev/null
fi

case "$dir" in /*) ;; *) dir="$root/$dir" ;; esac
dir=$(realpath -m "$dir")
if [[ "$dir" == "$root" || "$dir" == / || ( -e "$dir" && ! -d "$dir/meson-private" ) ]]; then
  echo "build_cost: refusing to delete $dir (not a meson build dir)" >&2
  exit 2
fi
rm -rf "$dir"
meson setup "$dir" --buildtype=release -Doptimization=2 -Dcuda=disabled "$@" >"$dir.setup.log" 2>&1 || {
  cat "$dir.setup.log" >&2
  exit 2
}
mv "$dir.setup.log" "$dir/setup.log"

# One line per TU: <source relative to the repo> <tab> <directory> <tab> <command>
python3 - "$dir/compile_commands.json" "$root" "${ONLY:-}" >"$dir/tu_list.tsv" <<'PY'
import json, os, re, sys
db, root, only = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
seen = set()
for e in db:
    src = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(src, root)
    if rel.split(os.sep)[0] not in ("tests", "examples", "bench") or rel in seen:
        continue
    if only and not re.search(only, rel):
        continue
    seen.add(rel)
    cmd = e.get("command") or " ".join(e["arguments"])
    print(f"{rel}\t{e['directory']}\t{cmd}")
PY

count=$(wc -l <"$dir/tu_list.tsv")
if [[ "$count" -eq 0 ]]; then
  echo "build_cost: no test, example or bench translation units in $dir/compile_commands.json" >&2
  exit 2
fi
echo "build_cost: $count translation units, compiled one at a time (-O2, $(nproc) cores); limits ${max_s} s, ${max_mb} MB"
printf '%-48s %9s %9s\n' TU seconds peak_MB
status=0
total=0
while IFS=$'\t' read -r tu wd cmd; do
  out=$(sed -E 's/.* -o ([^ ]+).*/\1/' <<<"$cmd")
  (cd "$wd" && mkdir -p "$(dirname "$out")" && rm -f "$out")
  stats=$(mktemp)
  if (cd "$wd" && /usr/bin/time -f "%e %M" -o "$stats" bash -c "$cmd" >"$stats.log" 2>&1); then
    read -r secs kb <"$stats"
    mb=$((kb / 1024))
    flag=""
    if awk -v s="$secs" -v m="$max_s" 'BEGIN { exit !(s > m) }'; then flag+=" OVER-TIME"; fi
    if ((mb > max_mb)); then flag+=" OVER-MEMORY"; fi
    [[ -n "$flag" && $status -eq 0 ]] && status=1
    printf '%-48s %9s %9s%s\n' "$tu" "$secs" "$mb" "$flag"
    total=$(awk -v a="$total" -v b="$secs" 'BEGIN { print a + b }')
  else
    printf '%-48s %9s %9s FAILED (log: %s)\n' "$tu" - - "$stats.log"
    status=2
    continue
  fi
  rm -f "$stats" "$stats.log"
done <"$dir/tu_list.tsv"
echo "total_seconds: $total"
case $status in
  0) echo "build_cost: all translation units within limits" ;;
  1) echo "build_cost: some translation units are over the limits (marked above)" ;;
  *) echo "build_cost: some translation units failed to compile" ;;
esac
exit $status
